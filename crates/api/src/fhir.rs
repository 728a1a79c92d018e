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

/// Whether a request's body is sent as JSON: `application/fhir+json`, `application/json` or
/// another `+json` type. Anything else is 415 naming `application/fhir+json`.
fn sent_as_json(req: &Request) -> Result<(), ApiError> {
    let json = crate::extract::media_type(req.headers())
        .as_deref()
        .and_then(|e| e.strip_prefix("application/"))
        .is_some_and(|sub| sub == "json" || sub.ends_with("+json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType {
            expected: FHIR_MEDIA_TYPE,
        })
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
