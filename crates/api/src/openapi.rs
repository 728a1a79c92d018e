//! The OpenAPI document: generated from the routes, plus what every `/v1` operation shares
//! (bearer security and the standard problem responses), declared once here.

use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::problem::{Problem, ProblemField};
use crate::routes;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Passerelle",
        description = "Interoperability API between community health mutuals (mutuelles de santé) and the national \
health-insurance schemes of francophone West Africa (Togo AMU, Mali RAMU, Senegal CMU).\n\n\
Every `/v1` request carries `Authorization: Bearer <JWT>` (RS256, ES256 or EdDSA keys from a JWKS chosen by `kid`; \
HS256 with the development secret). Errors are RFC 9457 `application/problem+json` with a stable `code`, in French \
(default) or English by `Accept-Language`. Money is an integer number of XOF (`*_xof`), rates are basis points \
(`*_bp`, 8000 = 80 %). Lists take `limit` (1–500, default 50) and `cursor` and answer `{items, next_cursor}`. \
Every response carries `X-Request-Id` (echoed when sent).",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
        version = "1.0.0"
    ),
    servers((url = "/", description = "This service")),
    tags(
        (name = "organizations", description = "The operator, mutuelles, national schemes, health facilities and auditors"),
        (name = "products", description = "Benefit packages, versioned by effective date"),
        (name = "registrations", description = "Households joining a mutuelle's product, one by one or in bulk"),
        (name = "beneficiaries", description = "People, once, whichever organisation covers them"),
        (name = "coverages", description = "Memberships of products, their status and contributions"),
        (name = "eligibility", description = "Front-desk checks: covered today, by whom, at what rate, for how much"),
        (name = "claims", description = "Claims priced by coordination of benefits, adjudicated by each payer"),
        (name = "settlements", description = "Batches of adjudicated claims owed to a payee (bordereaux) and their payments"),
        (name = "webhooks", description = "Signed event deliveries to your systems, from an outbox, with retries"),
        (name = "audit", description = "The hash-chained audit log"),
        (name = "service", description = "Health, readiness and metrics; no token needed"),
    ),
    components(schemas(Problem, ProblemField)),
    modifiers(&SharedResponses)
)]
struct ApiDoc;

/// Every route with its documentation, before state is attached.
pub fn router() -> OpenApiRouter<AppState> {
    json_routes().merge(routes::batches::uploads())
}

/// Every route but the bulk uploads: those whose bodies are JSON, under the JSON body limit.
pub fn json_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::organizations::router())
        .merge(routes::products::router())
        .merge(routes::registrations::router())
        .merge(routes::batches::reads())
        .merge(routes::registry::router())
        .merge(routes::eligibility::router())
        .merge(routes::claims::router())
        .merge(routes::settlements::router())
        .merge(routes::webhooks::router())
        .merge(routes::audit::router())
        .merge(routes::health::router())
}

/// The complete document, as served at `/openapi.json` and printed by `passerelle openapi`.
pub fn document() -> Document {
    let (_, mut doc) = router().split_for_parts();
    add_shared_responses(&mut doc);
    doc
}

pub fn to_pretty_json(doc: &Document) -> String {
    let mut text = doc.to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}

struct SharedResponses;

impl Modify for SharedResponses {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT with `sub`, `org` (organisation id), `scope` (space-separated), `iss`, `aud`, `exp`.",
                    ))
                    .build(),
            ),
        );
        for (name, code, description, example) in SHARED {
            components.responses.insert(
                (*name).to_owned(),
                RefOr::T(problem_response(code, description, example)),
            );
        }
    }
}

/// (component name, status, description, example `code`).
const SHARED: &[(&str, &str, &str, &str)] = &[
    (
        "MalformedRequest",
        "400",
        "The body is not JSON, or not a JSON object",
        "malformed_request",
    ),
    (
        "Unauthorized",
        "401",
        "No token, or a token that is invalid, expired or not for this service",
        "unauthorized",
    ),
    (
        "Forbidden",
        "403",
        "The token lacks the scope, or the organisation's kind may not do this",
        "forbidden",
    ),
    (
        "PayloadTooLarge",
        "413",
        "The body is larger than the limit (1 MiB by default)",
        "payload_too_large",
    ),
    (
        "UnsupportedMediaType",
        "415",
        "The body is not `application/json`",
        "unsupported_media_type",
    ),
    (
        "ValidationFailed",
        "422",
        "The request breaks rules; every one is listed in `errors`",
        "validation_failed",
    ),
    (
        "Unavailable",
        "503",
        "The database is unreachable or the request timed out; nothing was changed",
        "unavailable",
    ),
];

fn problem_response(status: &str, description: &str, code: &str) -> Response {
    let example = serde_json::json!({
        "type": format!("urn:passerelle:problem:{code}"),
        "title": description,
        "status": status.parse::<u16>().unwrap_or(500),
        "detail": description,
        "instance": "/v1/organizations",
        "code": code,
        "request_id": "0193a5b2-7c1e-7d3a-9f00-2b1c4e5d6f70"
    });
    ResponseBuilder::new()
        .description(description)
        .content(
            crate::problem::PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .example(Some(example))
                .build(),
        )
        .build()
}

fn add_shared_responses(doc: &mut Document) {
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/v1") {
            continue;
        }
        let operations = [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in operations.into_iter().flatten() {
            add_to_operation(op);
        }
    }
}

fn add_to_operation(op: &mut Operation) {
    let has_body = op.request_body.is_some();
    let has_query = op
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query));
    for (name, status, _, _) in SHARED {
        let applies = match *status {
            "400" | "413" | "415" => has_body,
            "422" => has_body || has_query,
            _ => true,
        };
        if !applies {
            continue;
        }
        op.responses
            .responses
            .entry((*status).to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))));
    }
}
