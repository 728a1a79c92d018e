//! The OpenAPI document: generated from the routes, plus what every operation shares (bearer
//! security, the standard problem responses, the headers every response carries, list examples),
//! declared once here.
//!
//! Problem examples are not written by hand: each is the body the service itself writes for a
//! real [`ApiError`], in French (the default) and English, so titles and details cannot drift.

use passerelle_domain::claim::ClaimStatus;
use passerelle_domain::error::{FieldError, StoreError};
use passerelle_domain::organization::OrgKind;
use passerelle_domain::pagination::encode_list_cursor;
use passerelle_domain::policy::Action;
use serde_json::{json, Value};
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{ArrayItems, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Document, Ref, RefOr, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use crate::problem::{ApiError, Lang, Problem, ProblemField, RequestContext, PROBLEM_JSON};
use crate::routes;
use crate::state::AppState;

mod client_shapes;
mod fhir_requests;
mod links;

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
Every response carries `X-Request-Id` (echoed when sent). A request's W3C Trace Context `traceparent` is \
joined (the service's span its child when it exports traces) and carried on to the webhook deliveries of what the \
request changed. A method a path does not offer is 405 `method_not_allowed`, with `Allow` naming those it does.",
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
        (name = "fhir", description = "The FHIR R4 façade (`/fhir/r4`): the same people, coverages, checks and claims as `/v1`, \
as FHIR resources (`application/fhir+json`); errors are OperationOutcome"),
        (name = "service", description = "Health, readiness and metrics; no token needed"),
    ),
        components(schemas(Problem, ProblemField, routes::webhooks::WebhookEvent)),
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
        .merge(routes::households::router())
        .merge(routes::batches::reads())
        .merge(routes::registry::router())
        .merge(routes::eligibility::router())
        .merge(routes::claims::router())
        .merge(routes::settlements::router())
        .merge(routes::webhooks::router())
        .merge(routes::audit::router())
        .merge(routes::health::router())
        .merge(crate::fhir::router())
}

/// The query parameters each route declares, by route template: what its handlers read.
pub fn query_parameters() -> &'static std::collections::HashMap<String, Vec<String>> {
    static DECLARED: std::sync::LazyLock<std::collections::HashMap<String, Vec<String>>> =
        std::sync::LazyLock::new(|| {
            let (_, doc) = router().split_for_parts();
            doc.paths
                .paths
                .iter()
                .map(|(path, item)| {
                    // Every operation of the path: a list is a GET, and a POST may page too
                    // (`…/deliveries/redeliver`).
                    let names = [&item.get, &item.post, &item.put, &item.patch, &item.delete]
                        .into_iter()
                        .flatten()
                        .flat_map(|op| op.parameters.iter().flatten())
                        .filter(|p| matches!(p.parameter_in, utoipa::openapi::path::ParameterIn::Query))
                        .map(|p| p.name.clone())
                        .collect();
                    (path.clone(), names)
                })
                .collect()
        });
    &DECLARED
}

/// The complete document, as served at `/openapi.json` and printed by `passerelle openapi`.
pub fn document() -> Document {
    let (_, mut doc) = router().split_for_parts();
    add_shared_responses(&mut doc);
    drop_unused_responses(&mut doc);
    client_shapes::list_items_by_reference(&mut doc);
    add_list_examples(&mut doc);
    hoist_nullable_ref_descriptions(&mut doc);
    close_request_schemas(&mut doc);
    client_shapes::person_forms(&mut doc);
    client_shapes::one_patch_media_type(&mut doc);
    client_shapes::uploads_as_files(&mut doc);
    fhir_requests::fhir_request_resources(&mut doc);
    describe_idempotency_keys(&mut doc);
    add_claim_examples(&mut doc);
    let missed = add_value_sets(&mut doc);
    debug_assert!(missed.is_empty(), "value sets for unknown members: {missed:?}");
    client_shapes::flatten_closed_extensions(&mut doc);
    client_shapes::headers_never_null(&mut doc);
    client_shapes::query_value_sets_by_reference(&mut doc);
    client_shapes::capability_statement_members(&mut doc);
    add_webhooks(&mut doc);
    links::add_links(&mut doc);
    doc
}

/// The deliveries a subscriber receives, as OpenAPI 3.1 `webhooks`: one per event type, its
/// body the event with `data` of the resource that type carries, and the headers to check. In
/// prose only, generators could type no receiver. utoipa has no field for them; an extension
/// is written at the top level as it is named.
fn add_webhooks(doc: &mut Document) {
    let header = |name: &str, description: &str, example: &str| {
        json!({"name": name, "in": "header", "required": true, "description": description,
               "schema": {"type": "string"}, "example": example})
    };
    let parameters = json!([
        header(
            "Passerelle-Event-Id",
            "The event's id, as the body's `event_id`: deliveries are at least once, so ignore an id already handled.",
            "0193a5b2-8d2f-7e4b-a011-3c2d5e6f7081",
        ),
        header(
            "Passerelle-Signature",
            "`t=<unix seconds>,v1=<lowercase hex HMAC-SHA256(secret, \"<t>.<raw body>\")>`, the key being the \
             subscription's secret as UTF-8 text. Check it over the raw body, in constant time, and refuse a `t` more \
             than 5 minutes from your clock (API.md §5 Webhooks).",
            "t=1796619000,v1=c53d0e6f2a5b8c1d4e7f0a3b6c9d2e5f8a1b4c7d0e3f6a9b2c5d8e1f4a7b0c3d",
        ),
        header(
            "User-Agent",
            "`passerelle-webhooks/<release>`, for a firewall in front of the receiver to let deliveries through.",
            concat!("passerelle-webhooks/", env!("CARGO_PKG_VERSION")),
        ),
        json!({"name": "traceparent", "in": "header", "required": false,
               "description": "W3C Trace Context: present when the request that made the change carried a valid \
                `traceparent`, or when the service exports traces (`OTEL_EXPORTER_OTLP_ENDPOINT`). Exporting, it names \
                the delivery's own span, in the request's trace; otherwise it is the request's, passed on. Every \
                try of a delivery carries the same trace id. Not signed: use it to join traces, never to trust the event.",
               "schema": {"type": "string", "pattern": "^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$"},
               "example": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}),
    ]);
    let mut webhooks = serde_json::Map::new();
    for event in passerelle_domain::webhook::EVENT_TYPES {
        let (resource, summary) = match event.split('.').next() {
            _ if event == passerelle_domain::retention::ERASED_ACTION => (
                "BeneficiaryErasureView",
                format!("`{event}`: the person's personal data erased; their id, version and the instant alone"),
            ),
            Some("claim") => (
                "ClaimView",
                format!("`{event}`: the claim, as its GET shows it to the subscriber"),
            ),
            Some("coverage") => (
                "CoverageView",
                format!("`{event}`: the coverage, as its GET shows it to the subscriber"),
            ),
            _ => (
                "BeneficiaryView",
                format!("`{event}`: the person, as its GET shows it to the subscriber"),
            ),
        };
        webhooks.insert(
            event.to_owned(),
            json!({"post": {
                "summary": summary,
                "operationId": format!("webhook_{}", event.replace('.', "_")),
                "tags": ["webhooks"],
                // Sent with no bearer token: the signature authenticates the sender.
                "security": [],
                "parameters": parameters,
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"allOf": [
                    {"$ref": "#/components/schemas/WebhookEvent"},
                    {"type": "object", "properties": {
                        "type": {"type": "string", "const": event},
                        "data": {"$ref": format!("#/components/schemas/{resource}")},
                    }},
                ]}}}},
                "responses": {
                    "2XX": {"description": "Delivered: answer at once (a try has 10 s in all) and do the work afterwards."},
                    "default": {"description": "A failed try, as is a redirect or a timeout: retried with exponential \
                        backoff, up to `PASSERELLE_WEBHOOK_MAX_ATTEMPTS` tries (API.md §5 Webhooks)."},
                },
            }}),
        );
    }
    doc.extensions
        .get_or_insert_with(Default::default)
        .insert("webhooks".to_owned(), Value::Object(webhooks));
}

/// `POST /v1/claims` shows, beside its schema's one-line claim, the three-line claim that the
/// adjudication examples decide line by line, so that an integrator can follow one claim
/// through every step.
fn add_claim_examples(doc: &mut Document) {
    // The schema's own example, so that the two never drift apart.
    let one_line = match doc.components.as_ref().and_then(|c| c.schemas.get("ClaimWrite")) {
        Some(RefOr::T(Schema::Object(object))) => object.example.clone(),
        _ => None,
    };
    let (Some(one_line), Some(content)) = (
        one_line,
        doc.paths
            .paths
            .get_mut("/v1/claims")
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.request_body.as_mut())
            .and_then(|body| body.content.get_mut("application/json")),
    ) else {
        return;
    };
    let three_lines = json!({"external_id": "CMS-2026-000187", "provider": "cms-tsevie",
    "beneficiary": {"id": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f"}, "service_date": "2026-11-27",
    "care_level": "health_center", "diagnoses": ["B54"],
    "lines": [
        {"code": "CONS-GEN", "category": "consultation", "description": "Consultation de médecine générale", "quantity": 1, "unit_price_xof": 5000},
        {"code": "LAB-NFS", "category": "laboratory", "description": "Numération formule sanguine", "quantity": 1, "unit_price_xof": 3500},
        {"code": "PARA-500", "category": "pharmacy", "description": "Paracétamol 500 mg, boîte de 16", "quantity": 2, "unit_price_xof": 750}
    ]});
    for (name, summary, value) in [
        (
            "one_line",
            "A consultation, the person named by member number (an odd amount: the base's 80 % is rounded down)",
            one_line,
        ),
        (
            "three_lines",
            "A consultation, a blood count and medicines: the claim the adjudication examples decide line by line",
            three_lines,
        ),
    ] {
        let example = ExampleBuilder::new().summary(summary).value(Some(value)).build();
        content.examples.insert(name.to_owned(), RefOr::T(example));
    }
}

/// Every `Idempotency-Key` header the same way: a string (an optional header is absent, never
/// null) of 1 to 255 visible ASCII characters, and what a bad or reused key answers.
fn describe_idempotency_keys(doc: &mut Document) {
    use utoipa::openapi::schema::ObjectBuilder;
    for item in doc.paths.paths.values_mut() {
        let operations = [&mut item.put, &mut item.post, &mut item.patch];
        for op in operations.into_iter().flatten() {
            for parameter in op.parameters.iter_mut().flatten() {
                if parameter.name != "Idempotency-Key" || parameter.parameter_in != ParameterIn::Header {
                    continue;
                }
                parameter.schema = Some(RefOr::T(Schema::Object(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .min_length(Some(1))
                        .max_length(Some(255))
                        .pattern(Some("^[!-~]+$"))
                        .examples(["0193a5b2-7c1e-7d3a-9f00-2b1c4e5d6f70"])
                        .build(),
                )));
                let said = parameter.description.take().unwrap_or_default();
                parameter.description = Some(format!(
                    "{said}. 1 to 255 visible ASCII characters (a UUID is a good key), else 422 on \
                     `/header/Idempotency-Key`; the same key with another request is 422 `idempotency_key_reused`"
                ));
            }
        }
    }
}

/// The fixed value sets of string members, from the domain's own lists, each a named `enum`
/// schema that the members refer to: described in prose only, generated clients took them for
/// free text, and an `enum` written into each member (with `null` in it where the member may be
/// null) gave them one type per member, three for a nullable one. Returns the `(schema, member)`
/// pairs it could not find, for the test that keeps this table true.
fn add_value_sets(doc: &mut Document) -> Vec<(&'static str, &'static str)> {
    use passerelle_domain::beneficiary::Sex;
    use passerelle_domain::claim::ClaimStatus;
    use passerelle_domain::coordination::{AdjudicationReason, Decision};
    use passerelle_domain::coverage::{CoverageStatus, Relationship};
    use passerelle_domain::eligibility::{BirthDatePrecision, EligibilityStatus, ReasonCode};
    use passerelle_domain::ports::{BatchFormat, BatchStatus};
    use passerelle_domain::product::{CareLevel, Category, Layer};
    use passerelle_domain::settlement::SettlementStatus;

    fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|x| name(*x)).collect()
    }
    let sets: Vec<(&str, &str, Vec<&str>)> = vec![
        ("Layer", "Who pays first: `base` (a national scheme), `complementary` (a mutuelle, on what the base scheme leaves) or `primary` (a mutuelle as the only payer).", names(&Layer::ALL, Layer::as_str)),
        ("CareLevel", "The level of the health facility giving the care.", names(&CareLevel::ALL, CareLevel::as_str)),
        ("Category", "A category of care.", names(&Category::ALL, Category::as_str)),
        ("Sex", "A person's sex, as national registers record it.", names(&Sex::ALL, Sex::as_str)),
        ("BirthDatePrecision", "`day`, or `year` when only the year of birth is known (the date is then its 1 January).", names(&BirthDatePrecision::ALL, BirthDatePrecision::as_str)),
        ("CoverageStatus", "A coverage's status.", names(&CoverageStatus::ALL, CoverageStatus::as_str)),
        ("Relationship", "A member's place in the household: `principal`, or a dependant's relationship to the principal.", names(&Relationship::ALL, Relationship::as_str)),
        ("DependantRelationship", "A dependant's relationship to the principal.", Relationship::ALL.iter().filter(|r| **r != Relationship::Principal).map(|r| r.as_str()).collect()),
        ("ClaimStatus", "Where a claim is in its life.", names(&ClaimStatus::ALL, ClaimStatus::as_str)),
        ("EligibilityReasonCode", "Why a coverage does not cover the care asked about.", names(&ReasonCode::ALL, ReasonCode::as_str)),
        ("EligibilityStatus", "Whether a coverage covers the care asked about.", names(&EligibilityStatus::ALL, EligibilityStatus::as_str)),
        ("LineDecision", "A claim line's decision.", names(&Decision::ALL, Decision::as_str)),
        ("AdjudicationReason", "Why a claim line was reduced or rejected.", names(&AdjudicationReason::ALL, AdjudicationReason::as_str)),
        ("WebhookEventType", "A webhook event type.", passerelle_domain::webhook::EVENT_TYPES.to_vec()),
        ("BatchStatus", "A bulk job's status: `completed` once every row was read (whatever failed in it), `failed` when the job itself stopped.", names(&BatchStatus::ALL, BatchStatus::as_str)),
        ("BatchFormat", "A bulk upload's format.", names(&BatchFormat::ALL, BatchFormat::as_str)),
        ("SettlementStatus", "A settlement batch's status.", names(&SettlementStatus::ALL, SettlementStatus::as_str)),
        ("DeliveryStatus", "A webhook delivery's status.", passerelle_domain::webhook::DELIVERY_STATUSES.to_vec()),
        ("ProblemCode", "A problem's machine code (API.md §4).", crate::problem::PROBLEM_CODES.to_vec()),
    ];
    let table: [(&'static str, &'static str, &str); 42] = [
        ("DependantWrite", "relationship", "DependantRelationship"),
        ("DependantAdd", "relationship", "DependantRelationship"),
        ("ProductWrite", "layer", "Layer"),
        ("ProductWrite", "excluded_categories", "Category"),
        ("ProductView", "layer", "Layer"),
        ("ProductView", "excluded_categories", "Category"),
        ("RuleView", "care_level", "CareLevel"),
        ("RuleView", "category", "Category"),
        ("RuleWrite", "care_level", "CareLevel"),
        ("RuleWrite", "category", "Category"),
        ("ClaimWrite", "care_level", "CareLevel"),
        ("ClaimLineWrite", "category", "Category"),
        ("EligibilityRequest", "care_level", "CareLevel"),
        ("EligibilityRequest", "category", "Category"),
        ("PersonWrite", "sex", "Sex"),
        ("PersonWrite", "birth_date_precision", "BirthDatePrecision"),
        ("BeneficiaryView", "sex", "Sex"),
        ("BeneficiaryView", "birth_date_precision", "BirthDatePrecision"),
        ("CoveragePatch", "status", "CoverageStatus"),
        ("CoverageView", "status", "CoverageStatus"),
        ("CoverageView", "layer", "Layer"),
        ("CoverageView", "relationship", "Relationship"),
        ("MemberView", "relationship", "Relationship"),
        ("CoverageEligibilityView", "layer", "Layer"),
        ("CoverageEligibilityView", "status", "EligibilityStatus"),
        ("ReasonView", "code", "EligibilityReasonCode"),
        ("ClaimView", "status", "ClaimStatus"),
        ("ClaimView", "care_level", "CareLevel"),
        ("ClaimLineView", "category", "Category"),
        ("ClaimLineView", "decision", "LineDecision"),
        ("ClaimLineView", "reason_code", "AdjudicationReason"),
        ("WebhookCreate", "events", "WebhookEventType"),
        ("WebhookView", "events", "WebhookEventType"),
        ("WebhookEvent", "type", "WebhookEventType"),
        ("BatchSummaryView", "status", "BatchStatus"),
        ("BatchSummaryView", "format", "BatchFormat"),
        ("SettlementView", "status", "SettlementStatus"),
        ("SettlementSummaryView", "status", "SettlementStatus"),
        ("DeliveryView", "status", "DeliveryStatus"),
        ("Problem", "code", "ProblemCode"),
        ("ClaimReasonView", "code", "EligibilityReasonCode"),
        ("ClaimResponse", "disposition", "ClaimStatus"),
    ];
    // A string member, or an array's string items, becomes a reference to the set, and `oneOf`
    // null or it when it may be null; its description and example stay on the member.
    fn refer(property: &RefOr<Schema>, set: &str) -> Option<RefOr<Schema>> {
        let mut value = serde_json::to_value(property).ok()?;
        let reference = json!({"$ref": format!("#/components/schemas/{set}")});
        let types = value.get("type").cloned();
        let object = value.as_object_mut()?;
        let array = match &types {
            Some(Value::String(t)) => t == "array",
            Some(Value::Array(t)) => t.contains(&json!("array")),
            _ => false,
        };
        if array {
            let items = object.get_mut("items")?;
            if items.get("type") != Some(&json!("string")) {
                return None;
            }
            *items = reference;
        } else {
            let nullable = match types {
                Some(Value::String(t)) if t == "string" => false,
                Some(Value::Array(t)) if t.contains(&json!("string")) && t.contains(&json!("null")) => true,
                _ => return None,
            };
            for key in ["type", "enum", "format", "pattern", "minLength", "maxLength"] {
                object.remove(key);
            }
            if nullable {
                object.insert("oneOf".to_owned(), json!([{"type": "null"}, reference]));
            } else {
                object.extend(reference.as_object()?.clone());
            }
        }
        serde_json::from_value(value).ok()
    }
    let mut missed = Vec::new();
    let Some(components) = doc.components.as_mut() else {
        return table.iter().map(|(s, m, _)| (*s, *m)).collect();
    };
    for (schema, member, set) in table {
        let properties = match components.schemas.get_mut(schema) {
            Some(RefOr::T(Schema::Object(object))) => Some(&mut object.properties),
            // An extension (`allOf`): the member is in one of its inline parts.
            Some(RefOr::T(Schema::AllOf(all))) => all.items.iter_mut().find_map(|part| match part {
                RefOr::T(Schema::Object(object)) if object.properties.contains_key(member) => {
                    Some(&mut object.properties)
                }
                _ => None,
            }),
            _ => None,
        };
        let replaced = properties.and_then(|properties| {
            let referred = refer(properties.get(member)?, set)?;
            properties.insert(member.to_owned(), referred);
            Some(())
        });
        if replaced.is_none() {
            missed.push((schema, member));
        }
    }
    for (name, description, values) in sets {
        let set = json!({"type": "string", "description": description, "enum": values});
        if let Ok(set) = serde_json::from_value(set) {
            components.schemas.insert(name.to_owned(), set);
        }
    }
    missed
}

/// `doc` as JSON, as `/openapi.json` serves it and `passerelle openapi` prints it: with the
/// response headers every answer of their status carries marked `required`, which OpenAPI's
/// Header Object has and utoipa's does not, so that generated clients read them as given.
pub fn document_json(doc: &Document) -> Value {
    let mut value = serde_json::to_value(doc).unwrap_or_default();
    mark_required_headers(&mut value);
    value
}

pub fn to_pretty_json(doc: &Value) -> String {
    let mut text = serde_json::to_string_pretty(doc).unwrap_or_default();
    text.push('\n');
    text
}

/// Whether every answer of `status` carries the header `name`, whoever writes it: the request
/// id and the cache directive on every answer (the outermost layers), the entity tag wherever
/// an operation gives one, `Location` on a creation, the challenge of a 401, and the delay of a
/// 429 and of a 503 (`ApiError::into_response`). The test suite holds every answer it receives
/// to these (`tests/common/conformance.rs`). A 403's challenge is absent when the organisation's
/// kind may not call the operation, and the other headers are sent in some cases only.
fn always_sent(name: &str, status: &str) -> bool {
    match name {
        "X-Request-Id" | "Cache-Control" | "ETag" => true,
        "Location" => matches!(status, "201" | "202"),
        "WWW-Authenticate" => status == "401",
        "Retry-After" => matches!(status, "429" | "503"),
        _ => false,
    }
}

/// Marks the headers [`always_sent`] in the operations' responses, and in the shared responses
/// they refer to (each shared response stands for one status).
fn mark_required_headers(doc: &mut Value) {
    fn mark(status: &str, response: &mut Value) {
        let headers = response.get_mut("headers").and_then(Value::as_object_mut);
        for (name, header) in headers.into_iter().flatten() {
            if always_sent(name, status) {
                header["required"] = Value::Bool(true);
            }
        }
    }
    let mut shared = Vec::new();
    let operations = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let responses = operation.get_mut("responses").and_then(Value::as_object_mut);
        for (status, response) in responses.into_iter().flatten() {
            match response.get("$ref").and_then(Value::as_str) {
                Some(target) => shared.push((status.clone(), target.to_owned())),
                None => mark(status, response),
            }
        }
    }
    for (status, target) in shared {
        if let Some(response) = doc.pointer_mut(target.trim_start_matches('#')) {
            mark(&status, response);
        }
    }
}

/// The request id of every example.
const EXAMPLE_REQUEST_ID: &str = "0193a5b2-7c1e-7d3a-9f00-2b1c4e5d6f70";

/// The body the service writes for `error` on `instance`, in `lang`.
fn problem_body(error: &ApiError, lang: Lang, instance: &str) -> Value {
    let ctx = RequestContext {
        lang,
        path: instance.to_owned(),
        query: String::new(),
        route: String::new(),
        request_id: EXAMPLE_REQUEST_ID.to_owned(),
        trace_parent: None,
    };
    serde_json::to_value(error.to_problem(&ctx)).unwrap_or_default()
}

/// Named examples of a problem response: each error in French (the default) and in English;
/// as the OperationOutcome the FHIR façade writes for it when `instance` is a `/fhir` path.
fn problem_examples(
    errors: &[(&str, ApiError)],
    instance: &str,
) -> Vec<(String, RefOr<utoipa::openapi::example::Example>)> {
    let fhir = instance.starts_with("/fhir/");
    let mut out = Vec::new();
    for (name, error) in errors {
        for (lang, suffix, summary) in [
            (Lang::Fr, "fr", "in French (the default)"),
            (Lang::En, "en", "in English (`Accept-Language: en`)"),
        ] {
            let (key, summary) = if errors.len() == 1 {
                (suffix.to_owned(), capitalised(summary))
            } else {
                (format!("{name}_{suffix}"), format!("`{name}`, {summary}"))
            };
            let body = problem_body(error, lang, instance);
            let body = if fhir {
                crate::fhir::outcome::from_problem(&body)
            } else {
                body
            };
            let example = ExampleBuilder::new().summary(summary).value(Some(body)).build();
            out.push((key, RefOr::T(example)));
        }
    }
    out
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn string_header(description: &str, example: Value) -> Header {
    HeaderBuilder::new()
        .schema(ObjectBuilder::new().schema_type(Type::String).examples([example]))
        .description(Some(description))
        .build()
}

fn request_id_header() -> Header {
    string_header(
        "The request's id, on every response: the `X-Request-Id` the client sent when it is 1 to 128 letters, \
digits, `-`, `_`, `.` or `:`, else a new UUIDv7. Problem bodies repeat it as `request_id` and audit events \
record it; quote it when reporting a problem.",
        json!(EXAMPLE_REQUEST_ID),
    )
}

fn www_authenticate_header() -> Header {
    string_header(
        "The authentication scheme this service expects (RFC 6750 §3): `Bearer realm=\"passerelle\"` for a request \
without a token, and `Bearer realm=\"passerelle\", error=\"invalid_token\"` for a token that was sent and refused \
(expired, bad signature, unknown organisation…): get a new token before trying again; `error=\"invalid_request\"` \
for two `Authorization` headers, the token perhaps good: send one.",
        json!("Bearer realm=\"passerelle\", error=\"invalid_token\""),
    )
}

fn insufficient_scope_header() -> Header {
    string_header(
        "When the token lacks the operation's scope (RFC 6750 §3.1): `Bearer realm=\"passerelle\", \
error=\"insufficient_scope\", scope=\"<the scope>\"`. Absent when the organisation's kind may not call the operation.",
        json!("Bearer realm=\"passerelle\", error=\"insufficient_scope\", scope=\"claims:write\""),
    )
}

fn retry_after_header(description: &str, example: u64) -> Header {
    HeaderBuilder::new()
        .schema(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .examples([json!(example)]),
        )
        .description(Some(description))
        .build()
}

/// The headers a response with this status carries besides its own.
fn add_standard_headers(status: &str, response: &mut Response) {
    response
        .headers
        .entry("X-Request-Id".to_owned())
        .or_insert_with(request_id_header);
    response.headers.entry("Cache-Control".to_owned()).or_insert_with(|| {
        string_header(
            "`no-store`: an answer to its caller alone, which no cache may keep.",
            json!("no-store"),
        )
    });
    match status {
        "401" => {
            response
                .headers
                .entry("WWW-Authenticate".to_owned())
                .or_insert_with(www_authenticate_header);
        }
        "403" => {
            response
                .headers
                .entry("WWW-Authenticate".to_owned())
                .or_insert_with(insufficient_scope_header);
        }
        "415" => {
            response.headers.entry("Accept-Encoding".to_owned()).or_insert_with(|| {
                string_header(
                    "`identity`, when the body was refused for its `Content-Encoding` (RFC 7694): send it uncompressed.",
                    json!("identity"),
                )
            });
        }
        "503" => {
            response.headers.entry("Retry-After".to_owned()).or_insert_with(|| {
                retry_after_header(
                    "Seconds to wait before retrying: 5; 60 when the audit log cannot take new events until an \
operator repairs it, or when a bulk upload found the spool full.",
                    5,
                )
            });
        }
        "429" => {
            response.headers.entry("Retry-After".to_owned()).or_insert_with(|| {
                retry_after_header("Whole seconds until your organisation may send again (at least 1).", 1)
            });
        }
        _ => {}
    }
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
        for shared in shared_responses() {
            // Content negotiation is the façade's alone: `/v1` answers JSON whatever is asked.
            if shared.status != "406" {
                components
                    .responses
                    .insert(shared.name.to_owned(), RefOr::T(shared.response(false)));
            }
            // The façade's operations each answer their own 422, its faults at FHIR elements.
            if shared.status != "422" {
                components
                    .responses
                    .insert(format!("{FHIR_PREFIX}{}", shared.name), RefOr::T(shared.response(true)));
            }
        }
    }
}

/// Removes the shared responses no operation refers to (the shared 422 once every operation
/// answers its own).
fn drop_unused_responses(doc: &mut Document) {
    let paths = serde_json::to_string(&doc.paths).unwrap_or_default();
    if let Some(components) = doc.components.as_mut() {
        components
            .responses
            .retain(|name, _| paths.contains(&format!("\"#/components/responses/{name}\"")));
    }
}

/// A problem response shared by many operations.
struct Shared {
    name: &'static str,
    status: &'static str,
    description: String,
    /// What the service answers, each shown in French and English.
    errors: Vec<(&'static str, ApiError)>,
}

/// The names of the FHIR façade's shared responses: those of `/v1` with this prefix, whose
/// bodies are OperationOutcome.
const FHIR_PREFIX: &str = "Fhir";

impl Shared {
    fn response(&self, fhir: bool) -> Response {
        if fhir {
            self.response_at("/fhir/r4/Claim", None)
        } else {
            self.response_at("/v1/organizations", None)
        }
    }

    /// The response at this path, its `validation_failed` example the answer to `request` when
    /// one is given (the answer of `POST /v1/organizations` in [`validation_example`] otherwise).
    fn response_at(&self, instance: &str, request: Option<&str>) -> Response {
        let fhir = instance.starts_with("/fhir/");
        let (schema, media_type) = if fhir {
            ("OperationOutcome", crate::fhir::FHIR_MEDIA_TYPE)
        } else {
            ("Problem", PROBLEM_JSON)
        };
        let mut content = ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(schema)))
            .build();
        let errors: Vec<(&str, ApiError)> = self
            .errors
            .iter()
            .map(|(name, error)| match error {
                // The façade names its own media type.
                ApiError::UnsupportedMediaType { .. } if fhir => (
                    *name,
                    ApiError::UnsupportedMediaType {
                        expected: crate::fhir::FHIR_MEDIA_TYPE,
                    },
                ),
                other => (*name, other.clone()),
            })
            .collect();
        let examples = problem_examples(&errors, instance);
        content.examples = match request {
            Some(request) => answers_to(request, examples),
            None => examples.into_iter().collect(),
        };
        let mut response = ResponseBuilder::new()
            .description(self.description.as_str())
            .content(media_type, content)
            .build();
        add_standard_headers(self.status, &mut response);
        response
    }
}

/// A validation failure as `POST /v1/organizations` answers it for
/// `{"id": "mut-tsevie", "kind": "mutuelle", "country": "tg"}`.
fn validation_example() -> ApiError {
    ApiError::validation(vec![
        FieldError::required("/name"),
        FieldError::new(
            "/country",
            "invalid_country",
            "must be an ISO 3166-1 alpha-2 code in upper case, such as TG, ML or SN",
            "doit être un code ISO 3166-1 alpha-2 en majuscules, comme TG, ML ou SN",
        ),
    ])
}

/// What each operation does in the policy table (`passerelle_domain::policy`), as its handler's
/// `Authorized<perm::…>` names it: its scope, and the kinds of organisation that may call it.
/// `tests/examples.rs` calls every operation as each kind and compares.
fn action_of(method: &str, path: &str) -> Option<Action> {
    Some(match (method, path) {
        ("post", "/v1/organizations" | "/v1/organizations/{id}/deactivate" | "/v1/organizations/{id}/reactivate") => {
            Action::CreateOrganization
        }
        ("get", "/v1/organizations" | "/v1/organizations/{id}") => Action::ReadOrganizations,
        ("get", "/v1/audit-events" | "/v1/audit-events/{seq}") => Action::ReadAuditEvents,
        ("get", "/v1/audit-events/verify") => Action::VerifyAudit,
        ("get", "/v1/products" | "/v1/products/{id}" | "/v1/products/{id}/versions") => Action::ReadProducts,
        ("post", "/v1/products") | ("put", "/v1/products/{id}") => Action::WriteProducts,
        ("get", "/v1/beneficiaries" | "/v1/beneficiaries/{id}" | "/v1/coverages" | "/v1/coverages/{id}")
        | ("get", "/v1/coverages/{id}/contributions")
        | ("get", "/fhir/r4/Patient/{id}" | "/fhir/r4/Coverage" | "/fhir/r4/Coverage/{id}") => Action::ReadRegistry,
        ("post", "/v1/registrations" | "/v1/registrations/batches" | "/v1/coverages/{id}/dependants") => {
            Action::Register
        }
        ("get", "/v1/registrations/batches" | "/v1/registrations/batches/{id}")
        | ("get", "/v1/registrations/batches/{id}/errors" | "/v1/registrations/batches/{id}/possible-duplicates") => {
            Action::ReadBatches
        }
        ("post", "/v1/coverages") => Action::CreateCoverage,
        ("patch", "/v1/coverages/{id}")
        | ("post", "/v1/coverages/{id}/contributions" | "/v1/coverages/{id}/contributions/{contribution}/cancel") => {
            Action::UpdateCoverage
        }
        ("patch", "/v1/beneficiaries/{id}") | ("post", "/v1/beneficiaries/{id}/merge") => Action::UpdateBeneficiary,
        ("post", "/v1/eligibility-checks" | "/fhir/r4/CoverageEligibilityRequest") => Action::CheckEligibility,
        ("post", "/v1/claims" | "/fhir/r4/Claim") => Action::SubmitClaim,
        ("get", "/v1/claims" | "/v1/claims/{id}" | "/fhir/r4/ClaimResponse/{id}") => Action::ReadClaims,
        ("post", "/v1/claims/{id}/base-adjudication") => Action::BaseAdjudicate,
        ("post", "/v1/claims/{id}/adjudication") => Action::Adjudicate,
        ("post", "/v1/claims/{id}/cancel") => Action::CancelClaim,
        ("post", "/v1/settlements" | "/v1/settlements/{id}/payments") => Action::WriteSettlements,
        ("get", "/v1/settlements" | "/v1/settlements/{id}") => Action::ReadSettlements,
        (_, "/v1/webhooks" | "/v1/webhooks/{id}" | "/v1/webhooks/{id}/deliveries")
        | ("post", "/v1/webhooks/{id}/deliveries/{delivery}/redeliver" | "/v1/webhooks/{id}/deliveries/redeliver") => {
            Action::ManageWebhooks
        }
        _ => return None,
    })
}

fn kind_names(kinds: &[OrgKind]) -> Vec<&'static str> {
    kinds.iter().map(|k| k.as_str()).collect()
}

/// An operation's 403: its own scope missing, and, when some kinds may not call it, the first
/// of them calling it.
fn forbidden(action: Action) -> Shared {
    let scope = action.scope().as_str();
    let allowed = action.kinds();
    let refused: Vec<OrgKind> = OrgKind::ALL.into_iter().filter(|k| !allowed.contains(k)).collect();
    let mut errors = vec![("missing_scope", crate::extract::missing_scope(action.scope()))];
    let description = match refused.first() {
        None => format!(
            "The token lacks the `{scope}` scope; organisations of every kind may call this. Checked before any \
             state of the resource"
        ),
        Some(kind) => {
            errors.push(("wrong_kind", crate::extract::wrong_kind(*kind)));
            format!(
                "The token lacks the `{scope}` scope, or the caller's organisation is of a kind that may not do \
                 this: only {} may (`x-organization-kinds`). Checked before any state of the resource",
                kind_names(allowed).join(", ")
            )
        }
    };
    Shared {
        name: "Forbidden",
        status: "403",
        description,
        errors,
    }
}

/// The examples, those of `validation_failed` saying in their summary the request they answer.
fn answers_to(
    request: &str,
    examples: Vec<(String, RefOr<utoipa::openapi::example::Example>)>,
) -> std::collections::BTreeMap<String, RefOr<utoipa::openapi::example::Example>> {
    examples
        .into_iter()
        .map(|(key, example)| match example {
            RefOr::T(mut example) if !key.starts_with("idempotency_key_reused") => {
                example.summary = format!("{}: the answer to {request}", example.summary);
                (key, RefOr::T(example))
            }
            other => (key, other),
        })
        .collect()
}

/// The request that an operation's `validation_failed` example answers (said in its summary),
/// and the errors the service lists for it, in its order; `None` for `POST /v1/organizations`,
/// whose answer is the shared example's. The errors of a body's missing members are those of
/// `{}`; a list's are its `limit`'s, made by the code that reads it. `tests/examples.rs` sends
/// each request and compares the answer with the document's.
fn validation_example_of(method: &str, path: &str) -> Option<(&'static str, ApiError)> {
    let missing = |members: &[&str]| {
        ApiError::validation(members.iter().map(|m| FieldError::required(format!("/{m}"))).collect())
    };
    const EMPTY: &str = "the body `{}`";
    Some(match (method, path) {
        ("get", "/v1/beneficiaries") => (
            "no `national_id`",
            ApiError::field(FieldError::required("/query/national_id")),
        ),
        ("get", "/v1/settlements/{id}") => (
            "`?separator=tab`",
            routes::settlements::csv_separator(Some("tab")).err()?,
        ),
        ("get", _) => (
            "`?limit=0`",
            ApiError::validation(passerelle_domain::pagination::PageRequest::parse_list("", Some("0"), None).err()?),
        ),
        ("post", "/v1/claims") => (
            EMPTY,
            missing(&[
                "external_id",
                "provider",
                "service_date",
                "care_level",
                "beneficiary",
                "lines",
            ]),
        ),
        ("post", "/v1/claims/{id}/adjudication" | "/v1/claims/{id}/base-adjudication") => (EMPTY, missing(&["lines"])),
        ("post", "/v1/coverages") => (
            EMPTY,
            missing(&["beneficiary", "product", "member_number", "start_date"]),
        ),
        ("post", "/v1/coverages/{id}/contributions") => (
            EMPTY,
            missing(&["period_start", "period_end", "paid_at", "reference", "amount_xof"]),
        ),
        ("post", "/v1/coverages/{id}/dependants") => (
            EMPTY,
            missing(&[
                "start_date",
                "relationship",
                "family_name",
                "given_names",
                "sex",
                "birth_date",
            ]),
        ),
        ("post", "/v1/eligibility-checks") => (EMPTY, missing(&["care_level", "beneficiary"])),
        ("post", "/v1/products") | ("put", "/v1/products/{id}") => {
            (EMPTY, missing(&["layer", "name", "effective_from", "rules"]))
        }
        ("post", "/v1/registrations") => (EMPTY, missing(&["member_number", "start_date", "principal", "product"])),
        ("post", "/v1/settlements") => (EMPTY, missing(&["payee", "period_start", "period_end"])),
        ("post", "/v1/settlements/{id}/payments") => (EMPTY, missing(&["amount_xof", "paid_at", "reference"])),
        ("post", "/v1/webhooks") => (EMPTY, missing(&["url", "events"])),
        ("post", "/v1/webhooks/{id}/deliveries/redeliver") => (
            "`?since=yesterday`",
            routes::audit::parse_since(Some("yesterday")).err()?,
        ),
        ("post", "/v1/registrations/batches") => (
            "the CSV file `household,foo`",
            ApiError::validation(passerelle_domain::batch::check_csv_header(&b"household,foo\n"[..]).err()?),
        ),
        ("patch", "/v1/beneficiaries/{id}") => (
            "`{\"family_name\": null}`",
            ApiError::field(routes::people::name_removed("/family_name")),
        ),
        ("post", "/v1/beneficiaries/{id}/merge") => (EMPTY, ApiError::field(routes::merges::ambiguous_target())),
        ("patch", "/v1/coverages/{id}") => (
            "`{\"status\": \"paused\"}`",
            ApiError::field(routes::registry::unknown_coverage_status()),
        ),
        _ => return None,
    })
}

/// The shared problem responses. Messages that a handler builds itself are mirrored here (the
/// test below checks they are still the handler's).
fn shared_responses() -> Vec<Shared> {
    vec![
        Shared {
            name: "MalformedRequest",
            status: "400",
            description: "The body is not valid JSON, not a JSON object, or names one member twice in an object; \
nothing was changed"
                .into(),
            errors: vec![(
                "malformed_request",
                ApiError::malformed("The body must be a JSON object.", "Le corps doit être un objet JSON."),
            )],
        },
        Shared {
            name: "Unauthorized",
            status: "401",
            description: "No token, or a token whose signature, expiry, issuer or audience is wrong, or whose `org` \
is unknown here; `WWW-Authenticate` names the expected scheme"
                .into(),
            errors: vec![
                (
                    "missing_token",
                    ApiError::Unauthorized {
                        en: crate::problem::NO_TOKEN.0,
                        fr: crate::problem::NO_TOKEN.1,
                    },
                ),
                (
                    "expired_token",
                    ApiError::Unauthorized {
                        en: "The token has expired.",
                        fr: "Le jeton a expiré.",
                    },
                ),
            ],
        },
        Shared {
            name: "Forbidden",
            status: "403",
            description: "The token lacks this operation's scope, or the caller's organisation kind (or its role in \
this resource) may not do this; checked before any state of the resource"
                .into(),
            errors: vec![
                (
                    "missing_scope",
                    ApiError::forbidden(
                        "This action needs the registry:write scope.",
                        "Cette action exige la portée registry:write.",
                    ),
                ),
                (
                    "wrong_kind",
                    ApiError::forbidden(
                        "An organisation of kind provider may not do this.",
                        "Une organisation de type « provider » ne peut pas effectuer cette action.",
                    ),
                ),
            ],
        },
        Shared {
            name: "PayloadTooLarge",
            status: "413",
            description: "The body is larger than the limit (1 MiB by default, `PASSERELLE_BODY_LIMIT_BYTES`); \
nothing was changed"
                .into(),
            errors: vec![("payload_too_large", ApiError::PayloadTooLarge)],
        },
        Shared {
            name: "RequestTimeout",
            status: "408",
            description: "The body had not all arrived when the request timeout passed (30 s by default, \
`PASSERELLE_REQUEST_TIMEOUT_MS`; 30 min for a bulk upload, which is also cut once it sends nothing for \
`PASSERELLE_BATCH_UPLOAD_IDLE_MS`); nothing was done, since nothing acts on a body before all of it is in. The \
connection is closed (`Connection: close`): send the request again"
                .into(),
            errors: vec![(
                "request_timeout",
                ApiError::body_too_slow(std::time::Duration::from_secs(30)),
            )],
        },
        Shared {
            name: "NotAcceptable",
            status: "406",
            description: "The FHIR façade only: `Accept` (or `_format`) admits nothing it writes — XML, Turtle, \
HTML, or another FHIR version than 4.0. It writes `application/fhir+json; fhirVersion=4.0`, which `*/*`, \
`application/json` and `application/fhir+json` admit; nothing was changed"
                .into(),
            errors: vec![(
                "not_acceptable",
                ApiError::NotAcceptable {
                    available: crate::fhir::FHIR_JSON,
                },
            )],
        },
        Shared {
            name: "UnsupportedMediaType",
            status: "415",
            description: "The body is not sent as `application/json` (or another `+json` type), or is sent \
compressed (a `Content-Encoding` other than `identity`: bodies are taken as they are, even by an operation that \
reads none); nothing was changed"
                .into(),
            errors: vec![(
                "unsupported_media_type",
                ApiError::UnsupportedMediaType {
                    expected: "application/json",
                },
            )],
        },
        Shared {
            name: "ValidationFailed",
            status: "422",
            description: "The request breaks rules: missing fields, wrong types, unknown fields or values, rule \
violations, a bad `limit` or `cursor`. Every one is listed in `errors` with its JSON Pointer (`/query/<name>` \
and `/header/<name>` for those parts); nothing was changed"
                .into(),
            errors: vec![("validation_failed", validation_example())],
        },
        Shared {
            name: "ValidationFailedOrKeyReused",
            status: "422",
            description: "The request breaks rules (`validation_failed`, every one listed in `errors` with its JSON \
Pointer), or its `Idempotency-Key` was already used by your organisation with a different request \
(`idempotency_key_reused`); nothing was changed"
                .into(),
            errors: vec![
                ("validation_failed", validation_example()),
                ("idempotency_key_reused", ApiError::IdempotencyKeyReused),
            ],
        },
        Shared {
            name: "RateLimited",
            status: "429",
            description: "Your organisation sent more requests than its rate on this replica \
(`PASSERELLE_RATE_LIMIT_PER_SECOND` and `PASSERELLE_RATE_LIMIT_BURST`; no limit unless set); nothing was \
changed. Retry after `Retry-After` seconds"
                .into(),
            errors: vec![("rate_limited", ApiError::RateLimited { retry_after: 1 })],
        },
        Shared {
            name: "InternalError",
            status: "500",
            description: "An unexpected error; nothing was changed. Quote `request_id` when reporting it".into(),
            errors: vec![("internal_error", ApiError::Internal(String::new()))],
        },
        Shared {
            name: "InternalErrorOrAuditDamaged",
            status: "500",
            description: "An unexpected error (`internal_error`; quote `request_id` when reporting it), or \
`audit_log_damaged`: an event was changed outside the service (run the verification); nothing was changed"
                .into(),
            errors: vec![
                ("internal_error", ApiError::Internal(String::new())),
                ("audit_log_damaged", ApiError::AuditLogDamaged { seq: 42 }),
            ],
        },
        unavailable("Unavailable", ""),
        unavailable(
            "UnavailableOrSpoolFull",
            ", or the upload could not be written to the spool folder, or would not fit in it beside the uploads \
waiting for their jobs (`Retry-After` 60)",
        ),
    ]
}

/// The 503 of every operation; with `spool`, that of a bulk upload, which may also not be spooled.
fn unavailable(name: &'static str, spool: &str) -> Shared {
    let mut errors = vec![("unavailable", ApiError::Unavailable)];
    if !spool.is_empty() {
        errors.push(("unavailable_spool", ApiError::SpoolUnavailable));
        errors.push(("unavailable_spool_full", ApiError::SpoolFull));
    }
    errors.extend([
        ("unavailable_contended", ApiError::Contended),
        ("unavailable_timeout", ApiError::TimedOut),
        ("unavailable_commit_lost", ApiError::Indeterminate),
    ]);
    Shared {
        name,
        status: "503",
        description: format!(
            "The database is unreachable, or it lost to concurrent writes on PostgreSQL (a deadlock or \
serialization failure){spool}: nothing was changed. Or the request outlasted the request timeout (30 s by default, \
`PASSERELLE_REQUEST_TIMEOUT_MS`) with its body all in (one still arriving is 408), or the database connection broke while the change was committing (`detail` says \
which): it may have been applied all the same, so retry with the same `Idempotency-Key`, or read the resource \
before repeating an action that takes none. Retry after `Retry-After` seconds"
        ),
        errors,
    }
}

fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("get", &mut item.get),
        ("post", &mut item.post),
        ("put", &mut item.put),
        ("patch", &mut item.patch),
        ("delete", &mut item.delete),
    ]
    .into_iter()
    .filter_map(|(method, op)| op.as_mut().map(|op| (method, op)))
    .collect()
}

fn add_shared_responses(doc: &mut Document) {
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in operations(item) {
            let open = op
                .security
                .as_ref()
                .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
            if path.starts_with("/v1") {
                add_to_operation(method, path, op, "");
            } else if path.starts_with("/fhir/") && !open {
                add_to_operation(method, path, op, FHIR_PREFIX);
            } else if path.starts_with("/fhir/") {
                op.responses.responses.entry("406".to_owned()).or_insert_with(|| {
                    RefOr::Ref(Ref::new(format!("#/components/responses/{FHIR_PREFIX}NotAcceptable")))
                });
            }
            add_idempotency_conflict(op);
            complete_inline_responses(method, path, op);
        }
    }
}

/// What a retry that overtakes its first request answers, on every operation that takes an
/// `Idempotency-Key`: said on the operation's own 409, which is made when it has none.
fn add_idempotency_conflict(op: &mut Operation) {
    if !has_header(op, "Idempotency-Key") {
        return;
    }
    const IN_PROGRESS: &str =
        "`idempotency_in_progress`: the first request with this `Idempotency-Key` is still running; retry it";
    match op.responses.responses.entry("409".to_owned()) {
        std::collections::btree_map::Entry::Occupied(mut found) => {
            if let RefOr::T(response) = found.get_mut() {
                let said = response.description.trim_end_matches('.');
                response.description = format!("{said}; or {IN_PROGRESS}.");
            }
        }
        std::collections::btree_map::Entry::Vacant(slot) => {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            slot.insert(RefOr::T(
                ResponseBuilder::new()
                    .description(format!("Conflict: {IN_PROGRESS}."))
                    .content(PROBLEM_JSON, content)
                    .build(),
            ));
        }
    }
}

fn has_header(op: &Operation, name: &str) -> bool {
    op.parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, ParameterIn::Header) && p.name.eq_ignore_ascii_case(name))
}

fn add_to_operation(method: &str, path: &str, op: &mut Operation, prefix: &str) {
    let has_body = op.request_body.is_some();
    // The body limit is enforced before any route reads a body, so a POST that takes none (a
    // cancel, a deactivation) still answers 413 to an oversized one.
    let may_carry_body = has_body || matches!(method, "post" | "put" | "patch");
    let has_query = op
        .parameters
        .iter()
        .flatten()
        .any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let idempotent = has_header(op, "Idempotency-Key");
    for shared in shared_responses() {
        let audit_read = method == "get" && path.starts_with("/v1/audit-events");
        let upload = method == "post" && path == "/v1/registrations/batches";
        let applies = match shared.status {
            "500" => (shared.name == "InternalErrorOrAuditDamaged") == audit_read,
            "503" => (shared.name == "UnavailableOrSpoolFull") == upload,
            "400" => has_body,
            // A `GET` or `DELETE` drops any body unread (`drain_oversized`).
            "415" | "408" | "413" => may_carry_body,
            "406" => !prefix.is_empty(),
            "422" if shared.name == "ValidationFailedOrKeyReused" => idempotent,
            "422" => !idempotent && (has_body || has_query),
            _ => true,
        };
        if !applies || (!prefix.is_empty() && shared.status == "422") {
            continue;
        }
        if shared.status == "403" {
            if let Some(action) = action_of(method, path) {
                op.responses
                    .responses
                    .entry("403".to_owned())
                    .or_insert_with(|| RefOr::T(forbidden(action).response_at(&example_path(path), None)));
                op.extensions.get_or_insert_with(Default::default).merge(
                    utoipa::openapi::extensions::Extensions::builder()
                        .add("x-organization-kinds", kind_names(action.kinds()))
                        .build(),
                );
                continue;
            }
        }
        if shared.status == "422" {
            if let Some((request, error)) = validation_example_of(method, path) {
                let own = Shared {
                    errors: shared
                        .errors
                        .iter()
                        .map(|(name, e)| {
                            (
                                *name,
                                if *name == "validation_failed" {
                                    error.clone()
                                } else {
                                    e.clone()
                                },
                            )
                        })
                        .collect(),
                    ..shared
                };
                op.responses
                    .responses
                    .entry("422".to_owned())
                    .or_insert_with(|| RefOr::T(own.response_at(&example_path(path), Some(request))));
                continue;
            }
        }
        op.responses
            .responses
            .entry(shared.status.to_owned())
            .or_insert_with(|| RefOr::Ref(Ref::new(format!("#/components/responses/{prefix}{}", shared.name))));
    }
}

/// Headers on every response an operation declares itself, and examples on its problem
/// responses that have none.
fn complete_inline_responses(method: &str, path: &str, op: &mut Operation) {
    let needs_if_match = has_header(op, "If-Match");
    let has_idempotency_key = has_header(op, "Idempotency-Key");
    let instance = example_path(path);
    for (status, response) in op.responses.responses.iter_mut() {
        let RefOr::T(response) = response else { continue };
        add_standard_headers(status, response);
        let fhir_error = status.starts_with(['4', '5']) && path.starts_with("/fhir/");
        let media_type = if fhir_error {
            crate::fhir::FHIR_MEDIA_TYPE
        } else {
            PROBLEM_JSON
        };
        let Some(content) = response.content.get_mut(media_type) else {
            continue;
        };
        if content.example.is_some() || !content.examples.is_empty() {
            continue;
        }
        if status == "422" && path.starts_with("/v1/") {
            if let Some((request, error)) = validation_example_of(method, path) {
                let mut errors = vec![("validation_failed", error)];
                if has_idempotency_key {
                    errors.push(("idempotency_key_reused", ApiError::IdempotencyKeyReused));
                }
                content.examples = answers_to(request, problem_examples(&errors, &instance));
                continue;
            }
        }
        let mut errors = inline_problems(method, path, status, needs_if_match);
        if status == "409" && has_idempotency_key {
            errors.push((
                "idempotency_in_progress",
                ApiError::from(StoreError::Conflict {
                    constraint: "idempotency_in_progress".to_owned(),
                }),
            ));
        }
        if !errors.is_empty() {
            content.examples = problem_examples(&errors, &instance).into_iter().collect();
        }
    }
}

/// What an operation's own problem response answers, when it is fixed by the status or listed
/// here; empty when not known (no example is then invented).
fn inline_problems(method: &str, path: &str, status: &str, needs_if_match: bool) -> Vec<(&'static str, ApiError)> {
    match status {
        "400" if method == "post" && path == "/v1/registrations/batches" => {
            vec![("malformed_request", crate::bulk::spool::cut_short())]
        }
        "404" => vec![("not_found", ApiError::NotFound)],
        "409" => conflicts(method, path),
        "412" => vec![("precondition_failed", ApiError::PreconditionFailed)],
        "413" => vec![("payload_too_large", ApiError::PayloadTooLarge)],
        "415" if method == "patch" && matches!(path, "/v1/coverages/{id}" | "/v1/beneficiaries/{id}") => vec![(
            "unsupported_media_type",
            ApiError::UnsupportedMediaType {
                expected: crate::extract::MERGE_PATCH,
            },
        )],
        "415" if method == "post" && path == "/v1/registrations/batches" => vec![(
            "unsupported_media_type",
            ApiError::UnsupportedMediaType {
                expected: crate::routes::batches::MEDIA_TYPES,
            },
        )],
        "428" => vec![(
            "precondition_required",
            ApiError::PreconditionRequired {
                header: if needs_if_match { "If-Match" } else { "Idempotency-Key" },
            },
        )],
        "503" => vec![("unavailable", ApiError::Unavailable)],
        "422" => fhir_validation(path),
        _ => Vec::new(),
    }
}

/// What the FHIR façade's own 422 answers, each fault at its element; empty for other paths.
fn fhir_validation(path: &str) -> Vec<(&'static str, ApiError)> {
    let fault = |at: &str, code: &str, en: &str, fr: &str| FieldError::new(at, code, en, fr);
    match path {
        "/fhir/r4/Claim" => vec![
            (
                "validation_failed",
                ApiError::validation(vec![
                    fault(
                        "Claim.item[0].unitPrice.currency",
                        "unknown_value",
                        "must be XOF",
                        "doit être XOF",
                    ),
                    FieldError::required("Claim.item[1].servicedDate"),
                ]),
            ),
            ("idempotency_key_reused", ApiError::IdempotencyKeyReused),
        ],
        "/fhir/r4/CoverageEligibilityRequest" => vec![(
            "validation_failed",
            ApiError::validation(vec![fault(
                "CoverageEligibilityRequest.item[0].extension",
                "required",
                "needs the extension urn:passerelle:care-level with a valueCode",
                "doit avoir l'extension urn:passerelle:care-level avec un valueCode",
            )]),
        )],
        "/fhir/r4/Coverage" => vec![(
            "validation_failed",
            ApiError::validation(vec![FieldError::required("/query/beneficiary")]),
        )],
        _ => Vec::new(),
    }
}

/// The conflicts each operation answers with.
fn conflicts(method: &str, path: &str) -> Vec<(&'static str, ApiError)> {
    let store = |constraint: &str| {
        ApiError::from(StoreError::Conflict {
            constraint: constraint.to_owned(),
        })
    };
    let claim_is = crate::routes::claims::illegal_state;
    match (method, path) {
        ("post", "/v1/organizations") => vec![("organization_exists", store("organization_exists"))],
        ("post", "/v1/organizations/{id}/deactivate") => vec![
            ("already_deactivated", store("already_deactivated")),
            ("own_organization", crate::routes::organizations::own_organization()),
            (
                "configured_operator",
                crate::routes::organizations::configured_operator(),
            ),
        ],
        ("post", "/v1/organizations/{id}/reactivate") => vec![("already_active", store("already_active"))],
        ("patch", "/v1/beneficiaries/{id}") => vec![
            ("national_id_taken", store("national_id_taken")),
            ("coverage_terminated", crate::routes::people::coverages_ended()),
        ],
        ("post", "/v1/beneficiaries/{id}/merge") => vec![
            ("has_national_id", store("has_national_id")),
            ("covered_by_others", store("covered_by_others")),
            ("identity_mismatch", store("identity_mismatch")),
            ("already_covered", crate::routes::merges::both_covered()),
            ("already_merged", store("already_merged")),
            ("coverage_terminated", crate::routes::people::coverages_ended()),
        ],
        // A registration's conflict points at the member at fault (`errors`).
        ("post", "/v1/registrations") => vec![
            ("member_number_taken", store("member_number_taken@0")),
            ("already_covered", store("already_covered@2")),
            ("identity_mismatch", store("identity_mismatch@1")),
        ],
        ("post", "/v1/coverages") => vec![
            ("member_number_taken", store("member_number_taken")),
            ("already_covered", store("already_covered")),
            ("identity_mismatch", store("identity_mismatch")),
        ],
        ("post", "/v1/claims") => vec![("external_id_taken", crate::routes::claims::duplicate_external_id())],
        ("post", "/fhir/r4/Claim") => vec![("external_id_taken", crate::fhir::claim::duplicate_identifier())],
        ("post", "/v1/coverages/{id}/contributions") => vec![
            ("coverage_terminated", store("coverage_terminated")),
            ("duplicate_reference", store("duplicate_reference")),
        ],
        ("post", "/v1/coverages/{id}/dependants") => vec![
            (
                "household_full",
                crate::routes::households::household_conflict("household_full"),
            ),
            (
                "household_terminated",
                crate::routes::households::household_conflict("household_terminated"),
            ),
            (
                "already_covered",
                crate::routes::households::household_conflict("already_covered"),
            ),
            (
                "member_number_taken",
                crate::routes::households::household_conflict("member_number_taken"),
            ),
            (
                "duplicate_member",
                crate::routes::households::household_conflict("duplicate_member"),
            ),
            (
                "identity_mismatch",
                crate::routes::households::household_conflict("identity_mismatch"),
            ),
            (
                "not_principal",
                crate::routes::households::household_conflict("not_principal"),
            ),
        ],
        ("post", "/v1/coverages/{id}/contributions/{contribution}/cancel") => vec![
            ("coverage_terminated", store("coverage_terminated")),
            ("already_cancelled", store("already_cancelled")),
        ],
        ("patch", "/v1/coverages/{id}") => vec![("terminated", crate::routes::registry::terminated_coverage())],
        ("post", "/v1/claims/{id}/base-adjudication") => {
            vec![("not_awaiting_base", claim_is(ClaimStatus::AwaitingComplementary))]
        }
        ("post", "/v1/claims/{id}/adjudication") => {
            vec![("not_awaiting_complementary", claim_is(ClaimStatus::AwaitingBase))]
        }
        ("post", "/v1/claims/{id}/cancel") => vec![("not_awaiting", claim_is(ClaimStatus::Adjudicated))],
        ("post", "/v1/webhooks") => vec![("subscription_deleted", crate::routes::webhooks::subscription_deleted())],
        ("post", "/v1/webhooks/{id}/deliveries/{delivery}/redeliver") => vec![
            ("already_delivered", crate::routes::webhooks::not_failed("delivered")),
            ("delivery_pending", crate::routes::webhooks::not_failed("pending")),
        ],
        ("post", "/v1/settlements/{id}/payments") => vec![
            ("already_paid", crate::routes::settlements::already_paid()),
            ("duplicate_reference", store("duplicate_payment_reference")),
        ],
        _ => Vec::new(),
    }
}

/// A path with its parameters replaced by ids shaped like the real ones, for `instance`.
fn example_path(path: &str) -> String {
    let mut out = Vec::new();
    let mut previous = "";
    for segment in path.split('/') {
        let value = match (segment, previous) {
            ("{seq}", _) => "42",
            ("{id}", "organizations") => "mut-tsevie",
            ("{id}", "products") => "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f",
            ("{id}", "beneficiaries" | "Patient") => "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f",
            ("{id}", "coverages" | "Coverage") => "01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70",
            ("{contribution}", "contributions") => "01937f0e-8e4c-7f5d-9a21-3c4d5e6f7081",
            ("{id}", "batches") => "01937f0e-9f5d-7a6e-8b32-4d5e6f708192",
            ("{id}", "claims" | "ClaimResponse") => "01937f0f-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
            ("{id}", "settlements") => "01937f10-2b3c-7d4e-8f50-6a7b8c9d0e1f",
            ("{id}", "webhooks") => "01937f12-4d5e-7f60-8172-8c9d0e1f2031",
            ("{delivery}", "deliveries") => "01938b21-7a8b-7c9d-8e0f-1a2b3c4d5e6f:01937f12-4d5e-7f60-8172-8c9d0e1f2031",
            _ => segment,
        };
        out.push(value);
        previous = segment;
    }
    out.join("/")
}

/// Each `ListOf_<Item>` gets an example: a page holding the item's own example, with the cursor
/// the service would give for it (none for the beneficiary search, which answers one page). Its
/// `items` get a description too (`routes::ListOf` has none on that field).
fn add_list_examples(doc: &mut Document) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    let mut found = Vec::new();
    for (name, schema) in &components.schemas {
        let Some(item) = name.strip_prefix("ListOf_") else {
            continue;
        };
        let RefOr::T(Schema::Object(list)) = schema else {
            continue;
        };
        if list.example.is_some() || !list.examples.is_empty() {
            continue;
        }
        let Some(RefOr::T(Schema::Array(items))) = list.properties.get("items") else {
            continue;
        };
        let ArrayItems::RefOrSchema(inner) = &items.items else {
            continue;
        };
        let example = match inner.as_ref() {
            RefOr::T(Schema::Object(object)) => object.example.clone(),
            RefOr::Ref(_) => match components.schemas.get(item) {
                Some(RefOr::T(Schema::Object(object))) => object.example.clone(),
                _ => None,
            },
            _ => None,
        };
        let Some(example) = example else { continue };
        let cursor = next_key(item, &example).map(|key| encode_list_cursor(name, &key));
        found.push((name.clone(), json!({"items": [example], "next_cursor": cursor})));
    }
    for (name, example) in found {
        if let Some(RefOr::T(Schema::Object(list))) = components.schemas.get_mut(&name) {
            list.example = Some(example);
        }
    }
    for (name, schema) in components.schemas.iter_mut() {
        if !name.starts_with("ListOf_") {
            continue;
        }
        let RefOr::T(Schema::Object(list)) = schema else {
            continue;
        };
        if let Some(RefOr::T(Schema::Array(items))) = list.properties.get_mut("items") {
            items
                .description
                .get_or_insert_with(|| "This page's items, in the list's order: at most `limit`.".to_owned());
        }
    }
}

/// The sort key the store pages a list by, read from an item (see the stores' `from_overfetch`).
fn next_key(item: &str, example: &Value) -> Option<String> {
    match item {
        "BeneficiaryView" => None,
        "AuditEventView" => example.get("seq").map(Value::to_string),
        "ContributionView" => Some(format!(
            "{}|{}",
            example.get("paid_at")?.as_str()?,
            example.get("id")?.as_str()?
        )),
        _ => example.get("id")?.as_str().map(str::to_owned),
    }
}

/// The request bodies refuse members they do not know (422 `unknown_field`): the schemas used by
/// requests alone say so with `additionalProperties: false`, so that generated clients and
/// validators do not treat them as open. Schemas responses use too stay open, as a response
/// may gain members, and so do those another schema extends.
fn close_request_schemas(doc: &mut Document) {
    use std::collections::BTreeSet;
    use utoipa::openapi::schema::AdditionalProperties;

    fn refs_in(schema: &RefOr<Schema>, out: &mut BTreeSet<String>) {
        match schema {
            RefOr::Ref(r) => {
                if let Some(name) = r.ref_location.strip_prefix("#/components/schemas/") {
                    out.insert(name.to_owned());
                }
            }
            RefOr::T(Schema::Object(object)) => object.properties.values().for_each(|p| refs_in(p, out)),
            RefOr::T(Schema::Array(array)) => {
                if let ArrayItems::RefOrSchema(items) = &array.items {
                    refs_in(items, out);
                }
            }
            RefOr::T(Schema::AllOf(all)) => all.items.iter().for_each(|i| refs_in(i, out)),
            RefOr::T(Schema::OneOf(one)) => one.items.iter().for_each(|i| refs_in(i, out)),
            RefOr::T(Schema::AnyOf(any)) => any.items.iter().for_each(|i| refs_in(i, out)),
            _ => {}
        }
    }
    let (mut requests, mut responses) = (BTreeSet::new(), BTreeSet::new());
    for item in doc.paths.paths.values() {
        let operations = [&item.get, &item.put, &item.post, &item.delete, &item.patch];
        for op in operations.into_iter().flatten() {
            for content in op.request_body.iter().flat_map(|b| b.content.values()) {
                content.schema.iter().for_each(|s| refs_in(s, &mut requests));
            }
            for response in op.responses.responses.values() {
                if let RefOr::T(response) = response {
                    for content in response.content.values() {
                        content.schema.iter().for_each(|s| refs_in(s, &mut responses));
                    }
                }
            }
        }
    }
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for response in components.responses.values() {
        if let RefOr::T(response) = response {
            for content in response.content.values() {
                content.schema.iter().for_each(|s| refs_in(s, &mut responses));
            }
        }
    }
    // Each set with the schemas its members reach.
    for set in [&mut requests, &mut responses] {
        loop {
            let mut reached = set.clone();
            for name in set.iter() {
                if let Some(schema) = components.schemas.get(name) {
                    refs_in(schema, &mut reached);
                }
            }
            if reached.len() == set.len() {
                break;
            }
            *set = reached;
        }
    }
    // A schema another extends (`allOf`, as a dependant extends a person) stays open: closed,
    // it would refuse the members the extension adds.
    let mut extended = BTreeSet::new();
    for schema in components.schemas.values() {
        if let RefOr::T(Schema::AllOf(all)) = schema {
            all.items.iter().for_each(|i| refs_in(i, &mut extended));
        }
    }
    for name in requests.difference(&responses).filter(|n| !extended.contains(*n)) {
        // Objects with members only: a string enum is an `Object` to utoipa too.
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
            if !object.properties.is_empty() {
                object.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
}

/// utoipa puts the description of an optional `$ref` field inside its `oneOf`, beside the
/// reference; readers and tools look for it on the property itself.
fn hoist_nullable_ref_descriptions(doc: &mut Document) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for schema in components.schemas.values_mut() {
        hoist_in(schema);
    }
}

fn hoist_in(schema: &mut RefOr<Schema>) {
    match schema {
        RefOr::T(Schema::Object(object)) => {
            for property in object.properties.values_mut() {
                if let RefOr::T(Schema::OneOf(one_of)) = property {
                    if one_of.description.is_none() {
                        let described = one_of.items.iter_mut().find_map(|item| match item {
                            RefOr::Ref(r) if !r.description.is_empty() => Some(std::mem::take(&mut r.description)),
                            _ => None,
                        });
                        one_of.description = described;
                    }
                }
                hoist_in(property);
            }
        }
        RefOr::T(Schema::AllOf(all_of)) => all_of.items.iter_mut().for_each(hoist_in),
        RefOr::T(Schema::Array(array)) => {
            if let ArrayItems::RefOrSchema(items) = &mut array.items {
                hoist_in(items);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limits a schema states are written as literals (utoipa takes no constant there): each
    /// is checked here against the constant the server enforces.
    #[test]
    fn published_limits_are_the_enforced_ones() {
        use passerelle_domain::{money::MAX_XOF, product, registration};
        let doc = serde_json::to_value(document()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let limit = |schema: &str, field: &str, key: &str| {
            schemas[schema]["properties"][field][key]
                .as_i64()
                .unwrap_or_else(|| panic!("{schema}.{field} has no {key}"))
        };
        let max_lines = i64::try_from(crate::routes::claims::MAX_LINES).unwrap();
        let max_household = i64::try_from(registration::MAX_DEPENDANTS).unwrap();
        for (schema, field, key, enforced) in [
            ("EligibilityRequest", "amount_xof", "maximum", MAX_XOF),
            ("ClaimLineWrite", "unit_price_xof", "maximum", MAX_XOF),
            (
                "ClaimLineWrite",
                "quantity",
                "maximum",
                crate::routes::claims::MAX_QUANTITY,
            ),
            ("ClaimWrite", "lines", "maxItems", max_lines),
            ("ProductWrite", "annual_ceiling_xof", "maximum", MAX_XOF),
            (
                "ProductWrite",
                "waiting_period_days",
                "maximum",
                product::MAX_PERIOD_DAYS,
            ),
            ("ProductWrite", "grace_period_days", "maximum", product::MAX_PERIOD_DAYS),
            ("ProductWrite", "max_dependants", "maximum", product::MAX_DEPENDANTS),
            ("RuleWrite", "rate_bp", "maximum", 10_000),
            ("RegistrationWrite", "dependants", "maxItems", max_household),
            ("ContributionCreate", "amount_xof", "maximum", MAX_XOF),
            ("PaymentCreate", "amount_xof", "maximum", MAX_XOF),
        ] {
            assert_eq!(limit(schema, field, key), enforced, "{schema}.{field} {key}");
        }
    }

    /// Every value set of the table lands on a member the document has: a renamed field or
    /// schema would otherwise drop its `enum` silently in release builds.
    #[test]
    fn every_value_set_finds_its_member() {
        let (_, mut doc) = router().split_for_parts();
        assert_eq!(add_value_sets(&mut doc), Vec::<(&str, &str)>::new());
        let doc = serde_json::to_value(document()).unwrap();
        let schemas = &doc["components"]["schemas"];
        assert_eq!(
            schemas["EligibilityRequest"]["properties"]["category"]["oneOf"],
            json!([{"type": "null"}, {"$ref": "#/components/schemas/Category"}])
        );
        assert_eq!(schemas["Category"]["enum"].as_array().unwrap().len(), 10);
        assert_eq!(
            schemas["ListOf_ClaimView"]["properties"]["items"]["items"],
            json!({"$ref": "#/components/schemas/ClaimView"})
        );
        assert_eq!(
            schemas["ClaimView"]["properties"]["status"]["$ref"],
            json!("#/components/schemas/ClaimStatus")
        );
    }

    /// Request bodies are published closed, except what responses share and what another
    /// schema extends; every closed schema's own example stays within its members.
    #[test]
    fn request_schemas_are_closed_where_that_holds() {
        let doc = serde_json::to_value(document()).unwrap();
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let closed = |name: &str| schemas[name]["additionalProperties"] == json!(false);
        for name in [
            "ClaimWrite",
            "EligibilityRequest",
            "ProductWrite",
            "RegistrationWrite",
            "WebhookCreate",
            // Extensions of a person, written flat (`client_shapes::flatten_closed_extensions`).
            "ClosedPersonWrite",
            "DependantWrite",
            "DependantAdd",
        ] {
            assert!(closed(name), "{name} is closed");
        }
        // NationalIdView is also a response's.
        for name in ["NationalIdView", "ClaimView", "Problem"] {
            assert!(!closed(name), "{name} stays open");
        }
        assert!(
            !schemas.contains_key("PersonWrite"),
            "nothing refers to the part extended"
        );
        let dependant = &schemas["DependantWrite"];
        for member in ["relationship", "family_name", "sex", "birth_date"] {
            assert!(dependant["properties"].get(member).is_some(), "{member}");
            assert!(
                dependant["required"].as_array().unwrap().contains(&json!(member)),
                "{member}"
            );
        }
        for (name, schema) in schemas.iter().filter(|(n, _)| closed(n)) {
            let members = schema["properties"].as_object().unwrap();
            if let Some(example) = schema["example"].as_object() {
                for key in example.keys() {
                    assert!(members.contains_key(key), "{name}'s example has {key}, not a member");
                }
            }
        }
    }

    /// Header parameters are strings that may be absent, never `null` (generated clients sent
    /// `None` and failed); the capability statement's members are typed, as the service sends
    /// them.
    #[test]
    fn generated_clients_get_usable_types() {
        let doc = serde_json::to_value(document()).unwrap();
        let mut headers = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for parameter in op["parameters"].as_array().into_iter().flatten() {
                    if parameter["in"] == "header" {
                        headers += 1;
                        assert_eq!(
                            parameter["schema"]["type"], "string",
                            "{method} {path} {}",
                            parameter["name"]
                        );
                    }
                }
            }
        }
        assert!(headers > 20, "{headers}");
        // Query filters over a value set name its schema.
        for (path, name, set) in [
            ("/v1/claims", "status", "ClaimStatus"),
            ("/v1/registrations/batches", "status", "BatchStatus"),
            ("/v1/settlements", "status", "SettlementStatus"),
            ("/v1/webhooks/{id}/deliveries", "status", "DeliveryStatus"),
            ("/v1/settlements/{id}", "separator", "CsvSeparator"),
            ("/v1/registrations/batches/{id}/errors", "separator", "CsvSeparator"),
        ] {
            let parameter = doc["paths"][path]["get"]["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap();
            assert_eq!(
                parameter["schema"]["$ref"],
                format!("#/components/schemas/{set}"),
                "{path} {name}"
            );
        }
        let statement = &doc["components"]["schemas"]["CapabilityStatement"];
        let sent = serde_json::to_value(crate::fhir::metadata::statement()).unwrap();
        assert_eq!(
            statement["properties"]["software"]["required"],
            json!(["name", "version"])
        );
        assert!(sent["software"]["name"].is_string() && sent["software"]["version"].is_string());
        assert!(sent["implementation"]["description"].is_string());
        for rest in sent["rest"].as_array().unwrap() {
            assert!(rest["mode"].is_string());
            for resource in rest["resource"].as_array().unwrap() {
                assert!(resource["type"].is_string(), "{resource}");
            }
        }
    }

    /// The messages mirrored above are still the ones the handlers write.
    #[test]
    fn mirrored_messages_are_the_handlers() {
        let mirrored = [
            (include_str!("extract.rs"), "The body must be a JSON object."),
            (include_str!("extract.rs"), "This action needs the {} scope."),
            (
                include_str!("extract.rs"),
                "An organisation of kind {} may not do this.",
            ),
            (include_str!("auth.rs"), "The token has expired."),
            (include_str!("routes/claims.rs"), "Not possible while the claim is {}."),
            (
                include_str!("routes/claims.rs"),
                "Impossible : la demande de remboursement est au statut « {} » ({}).",
            ),
            (
                include_str!("routes/registry.rs"),
                "A terminated coverage cannot change; register the person again.",
            ),
            (
                include_str!("routes/settlements.rs"),
                "This settlement is already paid in full.",
            ),
            (
                include_str!("routes/settlements.rs"),
                "Ce bordereau est déjà entièrement réglé.",
            ),
        ];
        for (source, text) in mirrored {
            assert!(source.contains(text), "no longer written by its handler: {text}");
        }
    }

    #[test]
    fn examples_name_real_paths() {
        assert_eq!(
            example_path("/v1/claims/{id}/cancel"),
            "/v1/claims/01937f0f-1a2b-7c3d-8e4f-5a6b7c8d9e0f/cancel"
        );
        assert_eq!(example_path("/v1/audit-events/{seq}"), "/v1/audit-events/42");
    }

    /// Every response of every operation, shared ones included, marks the request id `required`;
    /// a 401 its challenge and a 429 its delay, where a 403's challenge, absent for an
    /// organisation's kind, stays optional.
    #[test]
    fn headers_sent_with_every_answer_are_required() {
        let doc = document_json(&document());
        let mut seen = 0;
        for item in doc["paths"].as_object().unwrap().values() {
            for operation in item
                .as_object()
                .unwrap()
                .values()
                .filter(|o| o.get("responses").is_some())
            {
                for (status, response) in operation["responses"].as_object().unwrap() {
                    let response = match response.get("$ref").and_then(Value::as_str) {
                        Some(target) => doc.pointer(target.trim_start_matches('#')).unwrap(),
                        None => response,
                    };
                    let required = |name: &str| response["headers"][name]["required"] == json!(true);
                    assert!(required("X-Request-Id"), "{status}: {response}");
                    assert_eq!(required("WWW-Authenticate"), status == "401", "{status}: {response}");
                    if status == "429" {
                        assert!(required("Retry-After"));
                    }
                    seen += 1;
                }
            }
        }
        assert!(seen > 400, "{seen} responses");
    }
}
