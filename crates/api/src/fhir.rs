//! The FHIR R4 façade (API.md §7), for systems that already speak FHIR: the same people,
//! coverages, checks and claims as `/v1`, through the same handlers' logic, rules, audit and
//! auth, read from and written as FHIR resources (`application/fhir+json`). Errors are
//! `OperationOutcome` ([`outcome`]).
//!
//! Only the elements the façade reads and writes are modelled ([`model`]); an element of a
//! request that the façade does not use is ignored, as FHIR servers commonly do.

pub mod claim;
pub mod eligibility;
pub mod metadata;
pub mod model;
pub mod outcome;
pub mod patient;
pub mod request;

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use passerelle_domain::ports::IdempotencyKey;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{AppJson, IdempotentJson};
use crate::problem::ApiError;
use crate::state::AppState;

/// The media type of every `/fhir/r4` response.
pub const FHIR_JSON: &str = "application/fhir+json; fhirVersion=4.0";
/// The same without its parameter, as the OpenAPI document names the content.
pub const FHIR_MEDIA_TYPE: &str = "application/fhir+json";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(metadata::metadata))
        .routes(routes!(patient::read_patient))
        .routes(routes!(patient::search_coverage))
        .routes(routes!(patient::read_coverage))
        .routes(routes!(eligibility::check))
        .routes(routes!(claim::submit_claim))
        .routes(routes!(claim::read_claim_response))
        .layer(axum::middleware::from_fn(negotiate))
}

/// R4's content negotiation: a request that accepts nothing the façade writes — XML, Turtle,
/// HTML, or JSON of another FHIR version — is 406 before anything else, rather than answered in
/// a format it did not ask for. `_format` (R4's override of `Accept`) is read first.
async fn negotiate(request: Request, next: axum::middleware::Next) -> Response {
    // Every `_format` given must be one it writes (two that disagree cannot both be served); a
    // name or value may be percent-encoded, and a media type may carry parameters.
    let formats: Vec<String> = request
        .uri()
        .query()
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(name) == "_format").then(|| decode(value))
        })
        .collect();
    let acceptable = if formats.is_empty() {
        // Several Accept lines are one list (RFC 9110 §5.3): any range of any line will do.
        let lines: Vec<&str> = request
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        lines.is_empty() || accepts_fhir_json(&lines.join(","))
    } else {
        formats.iter().all(|format| {
            let (media, parameters) = format.split_once(';').unwrap_or((format, ""));
            // A media type holds no space: one there was a `+` left unencoded
            // (`_format=application/fhir+json`, as FHIR's pages write it), read as a space.
            matches!(
                media.trim().replace(' ', "+").to_ascii_lowercase().as_str(),
                "json" | "application/json" | "application/fhir+json" | "application/json+fhir"
            ) && accepts_fhir_json(&format!("application/fhir+json;{parameters}"))
        })
    };
    if acceptable {
        next.run(request).await
    } else {
        ApiError::NotAcceptable { available: FHIR_JSON }.into_response()
    }
}

/// Whether an `Accept` value admits R4 JSON: a range `*/*`, `application/*`,
/// `application/fhir+json` or `application/json` (and DSTU2's `application/json+fhir`), not
/// given `q=0`, and with a `fhirVersion` parameter only of 4.0. A blank value admits anything.
fn accepts_fhir_json(accept: &str) -> bool {
    if accept.trim().is_empty() {
        return true;
    }
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let mut ok = matches!(
            media.as_str(),
            "*/*" | "application/*" | "application/fhir+json" | "application/json" | "application/json+fhir"
        );
        for parameter in parts {
            let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            let value = value.trim().trim_matches('"');
            match name.trim().to_ascii_lowercase().as_str() {
                // q=0, 0.0, 0.000: "not acceptable" (RFC 9110 §12.4.2).
                "q" => {
                    ok &= !value
                        .trim_start_matches('0')
                        .trim_start_matches('.')
                        .chars()
                        .all(|c| c == '0')
                }
                "fhirversion" => ok &= value == "4.0" || value.starts_with("4.0."),
                _ => {}
            }
        }
        ok
    })
}

/// A FHIR resource as the body of a response.
pub struct Fhir<T>(pub T);

impl<T: Serialize> IntoResponse for Fhir<T> {
    fn into_response(self) -> Response {
        let mut response = axum::Json(self.0).into_response();
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        response
    }
}

/// A resource read with its version: `ETag: W/"<versionId>"`, as R4 asks of a read (http.html,
/// *read*: the version ETag is weak), and 304 without a body when `If-None-Match` names that
/// version (weakly: `W/"3"` and `"3"` alike) or is `*`.
pub fn versioned<T: Serialize>(headers: &axum::http::HeaderMap, version: u32, body: T) -> Response {
    let tag =
        HeaderValue::from_str(&format!("W/\"{version}\"")).unwrap_or_else(|_| HeaderValue::from_static("W/\"0\""));
    let mut response = if crate::routes::products::none_match(headers, version) {
        axum::http::StatusCode::NOT_MODIFIED.into_response()
    } else {
        Fhir(body).into_response()
    };
    response.headers_mut().insert(header::ETAG, tag);
    response
}

/// Whether a request's body is sent as JSON: `application/fhir+json`, `application/json` or
/// another `+json` type. Anything else is 415 naming `application/fhir+json`.
fn sent_as_json(req: &Request) -> Result<(), ApiError> {
    let json = crate::extract::media_type(req.headers())
        .as_deref()
        .and_then(|e| e.strip_prefix("application/"))
        .is_some_and(|sub| sub == "json" || sub.ends_with("+json"));
    // A body declared of another FHIR version is not read as R4 (as `Accept` naming one is 406).
    // One media type's parameters, split at `;` outside quotes.
    let other_version = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let mut quoted = false;
            v.split(|c| {
                quoted ^= c == '"';
                c == ';' && !quoted
            })
            .skip(1)
            .filter_map(|p| p.split_once('='))
            .any(|(name, value)| {
                let value = value.trim().trim_matches('"');
                name.trim().eq_ignore_ascii_case("fhirversion") && value != "4.0" && !value.starts_with("4.0.")
            })
        });
    if !json {
        Err(ApiError::UnsupportedMediaType {
            expected: FHIR_MEDIA_TYPE,
        })
    } else if other_version {
        Err(ApiError::UnsupportedMediaType { expected: FHIR_JSON })
    } else if crate::extract::foreign_charset(req.headers()) {
        Err(ApiError::JsonCharset)
    } else {
        Ok(())
    }
}

/// A FHIR resource as the body of a request, read as `/v1` reads a JSON body.
pub struct FhirResource(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for FhirResource {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        sent_as_json(&req)?;
        let AppJson(body) = AppJson::from_request(req, state).await?;
        Ok(FhirResource(body))
    }
}

/// A FHIR resource as the body of a request that creates something, with the
/// `Idempotency-Key` it came with.
pub struct FhirBody {
    pub body: Map<String, Value>,
    pub idempotency: Option<IdempotencyKey>,
}

impl<S: Send + Sync> FromRequest<S> for FhirBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        sent_as_json(&req)?;
        let IdempotentJson { body, idempotency } = IdempotentJson::from_request(req, state).await?;
        Ok(FhirBody { body, idempotency })
    }
}

/// This server's base: of the absolute URLs a searchset Bundle gives (FHIR R4 http.html: a
/// search's entries carry their resources' absolute URLs), and of the absolute references a
/// request may give instead of relative ones: `PASSERELLE_PUBLIC_URL`, else the scheme and
/// host the request came in with (`X-Forwarded-Proto` from a proxy that ends TLS, else `http`;
/// `Host`). Empty when neither gives a usable host: the links stay relative and each `fullUrl`
/// is `urn:uuid:<id>`.
pub fn public_base(configured: Option<&str>, headers: &axum::http::HeaderMap) -> String {
    if let Some(url) = configured {
        return url.to_owned();
    }
    let header = |name: axum::http::HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim);
    let host = header(axum::http::header::HOST).filter(|h| {
        !h.is_empty()
            && h.len() <= 255
            && h.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    });
    // Proxies in a chain append to it (`https, http`): the first is the client's own.
    let first = |p: &str| p.split(',').next().unwrap_or_default().trim().to_owned();
    let scheme = match header(axum::http::HeaderName::from_static("x-forwarded-proto")).map(first) {
        Some(p) if p.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    host.map(|host| format!("{scheme}://{host}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::accepts_fhir_json;

    #[test]
    fn the_clients_scheme_is_the_first_a_proxy_chain_names() {
        let base = |proto: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert("host", "passerelle.example.org".parse().unwrap());
            headers.insert("x-forwarded-proto", proto.parse().unwrap());
            super::public_base(None, &headers)
        };
        assert_eq!(base("https, http"), "https://passerelle.example.org");
        assert_eq!(base("HTTPS"), "https://passerelle.example.org");
        assert_eq!(base("http, https"), "http://passerelle.example.org");
    }

    #[test]
    fn accept_values_are_read_as_r4_negotiates() {
        for yes in [
            "",
            "*/*",
            "application/fhir+json",
            "application/json",
            "application/fhir+json; fhirVersion=4.0",
            "application/fhir+xml;q=0.9, application/fhir+json;q=0.5",
            "text/html, application/*;q=0.1",
            "application/json+fhir",
        ] {
            assert!(accepts_fhir_json(yes), "{yes}");
        }
        for no in [
            "application/fhir+xml",
            "application/xml",
            "text/html",
            "text/plain",
            "application/fhir+json; fhirVersion=3.0",
            "application/fhir+json;fhirVersion=5.0",
            "application/fhir+json;q=0",
            "application/json;q=0.0, text/html",
        ] {
            assert!(!accepts_fhir_json(no), "{no}");
        }
    }
}
