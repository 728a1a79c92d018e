//! `GET /fhir/r4/Patient/{id}`, `GET /fhir/r4/Coverage/{id}` and
//! `GET /fhir/r4/Coverage?beneficiary=Patient/{id}`: the registry as FHIR reads it, with the same
//! visibility and audit as `/v1`.

use axum::extract::{Path, State};
use passerelle_domain::beneficiary::{Beneficiary, Sex};
use passerelle_domain::coverage::{Coverage, CoverageStatus, Relationship};
use passerelle_domain::eligibility::BirthDatePrecision;
use passerelle_domain::error::FieldError;
use passerelle_domain::pagination::{encode_list_cursor, PageRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::model::{
    CodeableConcept, Extension, Identifier, Meta, Period, Reference, COVERAGE_CLASS_SYSTEM, LAYER_SYSTEM,
    NATIONAL_ID_PREFIX, RELATIONSHIP_SYSTEM,
};
use super::Fhir;

/// What a link's query value escapes: all but RFC 3986's unreserved characters, so that an id
/// reads as itself (`Patient/01a2-…`, not `Patient/01a2%2D…`) to a client comparing links.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
use crate::extract::{perm, AppQuery, Authorized};
use crate::problem::{ApiError, MAX_LISTED_ERRORS};
use crate::state::AppState;

/// A person's name, byte-exact as registered.
#[derive(Debug, Serialize, ToSchema)]
pub struct HumanName {
    /// `official`.
    #[serde(rename = "use")]
    pub use_: &'static str,
    /// The family name.
    pub family: String,
    /// The given names as registered, in one string.
    pub given: Vec<String>,
}

/// A phone number, E.164.
#[derive(Debug, Serialize, ToSchema)]
pub struct ContactPoint {
    /// `phone`.
    pub system: &'static str,
    /// The number, E.164.
    pub value: String,
}

/// Where the person lives: region as `state`, district as `district`, commune as `city`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Address {
    /// The commune.
    pub city: String,
    /// The district.
    pub district: String,
    /// The region.
    pub state: String,
}

/// A beneficiary as FHIR's Patient.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"resourceType": "Patient", "id": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f",
    "meta": {"versionId": "1"}, "identifier": [{"system": "urn:passerelle:national-id:TG:NIU", "value": "234567890123"}],
    "name": [{"use": "official", "family": "Agbéko", "given": ["Akossiwa Élise"]}],
    "telecom": [{"system": "phone", "value": "+22890123456"}], "gender": "female", "birthDate": "1988",
    "address": [{"city": "Zio 1", "district": "Zio", "state": "Maritime"}]}))]
pub struct Patient {
    /// `Patient`.
    pub resource_type: &'static str,
    /// The beneficiary id.
    pub id: String,
    /// The person's `version` (`GET /v1/beneficiaries/{id}`).
    pub meta: Meta,
    /// The national id, in system `urn:passerelle:national-id:<country>:<type>`; empty for
    /// people without papers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    /// The official name.
    pub name: Vec<HumanName>,
    /// The phone number, when known.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<ContactPoint>,
    /// `female` or `male`.
    pub gender: &'static str,
    /// `YYYY-MM-DD`, or `YYYY` when only the year is known.
    pub birth_date: String,
    /// Where the person lives, when known.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub address: Vec<Address>,
    /// `false` on a record merged into another person (`POST /v1/beneficiaries/{id}/merge`);
    /// absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub active: Option<bool>,
    /// On a record merged into another person: that person, `replaced-by`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<PatientLink>,
}

/// The person a merged record was merged into.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"other": {"reference": "Patient/01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f"}, "type": "replaced-by"}))]
pub struct PatientLink {
    /// `Patient/<id>` of the person merged into.
    pub other: Reference,
    /// `replaced-by`.
    #[serde(rename = "type")]
    pub type_: &'static str,
}

impl From<Beneficiary> for Patient {
    fn from(b: Beneficiary) -> Patient {
        Patient {
            resource_type: "Patient",
            meta: Meta::of(b.version),
            id: b.id,
            identifier: b
                .national_id
                .map(|n| Identifier {
                    system: format!("{NATIONAL_ID_PREFIX}{}:{}", n.country, n.id_type),
                    value: n.value,
                })
                .into_iter()
                .collect(),
            name: vec![HumanName {
                use_: "official",
                family: b.family_name,
                given: vec![b.given_names],
            }],
            telecom: b
                .phone
                .map(|value| ContactPoint { system: "phone", value })
                .into_iter()
                .collect(),
            gender: match b.sex {
                Sex::F => "female",
                Sex::M => "male",
            },
            birth_date: match b.birth_date_precision {
                BirthDatePrecision::Year => b.birth_date.format("%Y").to_string(),
                BirthDatePrecision::Day => b.birth_date.to_string(),
            },
            address: b
                .locality
                .map(|l| Address {
                    city: l.commune,
                    district: l.district,
                    state: l.region,
                })
                .into_iter()
                .collect(),
            active: b.merged_into.as_ref().map(|_| false),
            link: b
                .merged_into
                .map(|into| PatientLink {
                    other: Reference {
                        reference: Some(format!("Patient/{into}")),
                        ..Reference::default()
                    },
                    type_: "replaced-by",
                })
                .into_iter()
                .collect(),
        }
    }
}

/// A person, as FHIR's Patient.
///
/// The same person and the same visibility as `GET /v1/beneficiaries/{id}`: 404 for an unknown
/// person or one you may not see; an auditor's or an operator's read is audited.
#[utoipa::path(
    get,
    path = "/fhir/r4/Patient/{id}",
    operation_id = "fhir_read_patient",
    tag = "fhir",
    params(
        ("id" = String, Path, description = "Beneficiary id"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy the client holds (`W/\"3\"`; a list, or `*`): 304 without a body when the person has not changed since"),
    ),
    responses(
        (status = 200, description = "The person", body = Patient, content_type = "application/fhir+json", headers(("ETag" = String, description = "`W/\"<meta.versionId>\"`"))),
        (status = 304, description = "`If-None-Match` names the current version. No body", headers(("ETag" = String, description = "`W/\"<meta.versionId>\"`"))),
        (status = 404, description = "No such person, or not covered by you", body = super::outcome::OperationOutcome, content_type = "application/fhir+json"),
        (status = 410, description = "The person's personal data was erased at the end of the deployment's retention period", body = super::outcome::OperationOutcome, content_type = "application/fhir+json"),
    ),
    security(("bearer" = ["registry:read"]))
)]
pub async fn read_patient(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadRegistry>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let person = crate::routes::registry::read_person(&state, &auth.caller, &id).await?;
    let version = person.version;
    Ok(super::versioned(&headers, version, Patient::from(person)))
}

/// The documented example of a Coverage, also the entry of the search example.
fn coverage_example() -> serde_json::Value {
    serde_json::json!({"resourceType": "Coverage", "id": "01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70",
    "meta": {"versionId": "1"}, "extension": [{"url": "urn:passerelle:coverage-status", "valueCode": "active"},
                  {"url": "urn:passerelle:paid-through", "valueDate": "2026-12-31"}],
    "status": "active", "type": {"coding": [{"system": "urn:passerelle:layer", "code": "complementary"}]},
    "subscriberId": "TSV-0042", "beneficiary": {"reference": "Patient/01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f"},
    "relationship": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship", "code": "self"}]},
    "period": {"start": "2026-01-01"},
    "payor": [{"type": "Organization", "identifier": {"system": "urn:passerelle:organization", "value": "mut-tsevie"}}],
    "class": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/coverage-class", "code": "plan"}]},
               "value": "01937f0e-5b1a-7c3d-8e9f-0a1b2c3d4e5f"}]})
}

fn bundle_example() -> serde_json::Value {
    serde_json::json!({"resourceType": "Bundle", "type": "searchset",
        "link": [{"relation": "self",
                  "url": "https://passerelle.example.org/fhir/r4/Coverage?beneficiary=Patient/01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f&_count=50"}],
        "entry": [{"fullUrl": "https://passerelle.example.org/fhir/r4/Coverage/01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70",
                   "resource": coverage_example(),
                   "search": {"mode": "match"}}]})
}

/// A coverage as FHIR's Coverage.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = coverage_example)]
pub struct FhirCoverage {
    /// `Coverage`.
    pub resource_type: &'static str,
    /// The coverage id.
    pub id: String,
    /// The coverage's `version` (`GET /v1/coverages/{id}`).
    pub meta: Meta,
    /// `urn:passerelle:coverage-status` (`active`, `suspended` or `terminated`, as in `/v1`),
    /// `urn:passerelle:paid-through` (a date) when contributions are paid, and
    /// `urn:passerelle:principal-coverage` (a reference) for a dependant.
    pub extension: Vec<Extension>,
    /// `active`, or `cancelled` once terminated.
    pub status: &'static str,
    /// The layer, in `urn:passerelle:layer`: `base`, `complementary` or `primary`.
    #[serde(rename = "type")]
    pub type_: CodeableConcept,
    /// The member number.
    pub subscriber_id: String,
    /// `Patient/<beneficiary id>`.
    pub beneficiary: Reference,
    /// `self` for the principal, else `spouse`, `child`, `parent` or `other`.
    pub relationship: CodeableConcept,
    /// `start_date` to `end_date`.
    pub period: Period,
    /// The mutuelle or scheme that holds it.
    pub payor: Vec<Reference>,
    /// The product, as the `plan` class.
    pub class: Vec<CoverageClass>,
}

/// The product a coverage belongs to.
#[derive(Debug, Serialize, ToSchema)]
pub struct CoverageClass {
    /// `plan`.
    #[serde(rename = "type")]
    pub type_: CodeableConcept,
    /// The product id.
    pub value: String,
}

impl From<Coverage> for FhirCoverage {
    fn from(c: Coverage) -> FhirCoverage {
        let mut extension = vec![Extension::code("urn:passerelle:coverage-status", c.status.as_str())];
        if let Some(paid) = c.paid_through {
            extension.push(Extension::date("urn:passerelle:paid-through", paid.to_string()));
        }
        if let Some(principal) = &c.principal_coverage {
            extension.push(Extension::reference(
                "urn:passerelle:principal-coverage",
                Reference::to("Coverage", principal),
            ));
        }
        FhirCoverage {
            resource_type: "Coverage",
            meta: Meta::of(c.version),
            extension,
            status: match c.status {
                CoverageStatus::Terminated => "cancelled",
                _ => "active",
            },
            type_: CodeableConcept::of(LAYER_SYSTEM, c.layer.as_str()),
            beneficiary: Reference::to("Patient", &c.beneficiary),
            relationship: CodeableConcept::of(
                RELATIONSHIP_SYSTEM,
                match c.relationship {
                    Relationship::Principal => "self",
                    other => other.as_str(),
                },
            ),
            period: Period {
                start: c.start_date.to_string(),
                end: c.end_date.map(|d| d.to_string()),
            },
            payor: vec![Reference::organization(&c.organization)],
            class: vec![CoverageClass {
                type_: CodeableConcept::of(COVERAGE_CLASS_SYSTEM, "plan"),
                value: c.product,
            }],
            subscriber_id: c.member_number,
            id: c.id,
        }
    }
}

/// A coverage, as FHIR's Coverage.
///
/// The same coverage, visibility and audit as `GET /v1/coverages/{id}`: readable by the
/// organisation that holds it, operators and auditors (whose reads are audited); 404 for anyone
/// else, providers included. The `Coverage/<id>` references the façade writes (a
/// CoverageEligibilityResponse's `insurance.coverage`, a dependant's
/// `urn:passerelle:principal-coverage`) are read here.
#[utoipa::path(
    get,
    path = "/fhir/r4/Coverage/{id}",
    operation_id = "fhir_read_coverage",
    tag = "fhir",
    params(
        ("id" = String, Path, description = "Coverage id"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy the client holds (`W/\"3\"`; a list, or `*`): 304 without a body when the coverage has not changed since"),
    ),
    responses(
        (status = 200, description = "The coverage", body = FhirCoverage, content_type = "application/fhir+json", headers(("ETag" = String, description = "`W/\"<meta.versionId>\"`"))),
        (status = 304, description = "`If-None-Match` names the current version. No body", headers(("ETag" = String, description = "`W/\"<meta.versionId>\"`"))),
        (status = 404, description = "No such coverage, or another organisation's", body = super::outcome::OperationOutcome, content_type = "application/fhir+json"),
    ),
    security(("bearer" = ["registry:read"]))
)]
pub async fn read_coverage(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadRegistry>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let coverage = crate::routes::registry::visible_coverage(&state, &auth.caller, &id).await?;
    crate::routes::audit::record_read(&state, &auth.caller, "coverage", &id).await?;
    let version = coverage.version;
    Ok(super::versioned(&headers, version, FhirCoverage::from(coverage)))
}

/// One search result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntry {
    /// The coverage's absolute URL, `<base>/fhir/r4/Coverage/<id>`, the base being
    /// `PASSERELLE_PUBLIC_URL` or else the request's scheme and `Host`; `urn:uuid:<id>` when
    /// the request carried no usable `Host`.
    pub full_url: String,
    /// The coverage.
    pub resource: FhirCoverage,
    /// `match`.
    pub search: SearchMode,
}

/// `{"mode": "match"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchMode {
    /// `match`.
    pub mode: &'static str,
}

/// A link of a search page: `self`, and `next` while more remain.
#[derive(Debug, Serialize, ToSchema)]
pub struct BundleLink {
    /// `self` or `next`.
    pub relation: &'static str,
    /// The page's absolute URL, on the same base as the entries' `fullUrl` (relative, from
    /// `/fhir/r4/`, when the request carried no usable `Host`).
    pub url: String,
}

/// A page of search results.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = bundle_example)]
pub struct Bundle {
    /// `Bundle`.
    pub resource_type: &'static str,
    /// `searchset`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// `self`, and `next` while more remain.
    pub link: Vec<BundleLink>,
    /// The coverages of this page, ordered by id; absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<BundleEntry>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CoverageSearch {
    /// Required: `Patient/<beneficiary id>`, the bare id, or this server's absolute
    /// `<base>/fhir/r4/Patient/<id>` (the base as the `fullUrl`s').
    // An `Option` so that its absence is the handler's 422 (`required`, `/query/beneficiary`).
    // The handler strips `Patient/`; what is left must not be empty (422 `required`).
    #[param(required = true, min_length = 1, pattern = "^(?!Patient/$)")]
    pub beneficiary: Option<String>,
    /// Results per page, 1–500 (default 50).
    #[serde(rename = "_count")]
    #[param(value_type = Option<i64>, minimum = 1, maximum = 500, example = 50, rename = "_count")]
    pub count: Option<String>,
    /// From the `next` link of the previous page.
    pub cursor: Option<String>,
}

/// The parameters a Coverage search reads; `_format` is the façade's (negotiation).
const SEARCH_PARAMETERS: [&str; 4] = ["beneficiary", "_count", "cursor", "_format"];

/// R4's `Prefer: handling=strict` (search.html): a parameter the search does not support is an
/// error rather than ignored. Without it (`lenient`, the default) such parameters are ignored,
/// and the `self` link shows what was used.
fn strict_search(headers: &axum::http::HeaderMap, uri: &axum::http::Uri) -> Result<(), ApiError> {
    let strict = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .any(|p| p.replace([' ', '\t', '"'], "").eq_ignore_ascii_case("handling=strict"));
    if !strict {
        return Ok(());
    }
    // Each name once, in the order first seen; past `MAX_LISTED_ERRORS + 1` only counted (a
    // query of thousands of made-up names is answered at once, in a few lines).
    let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut unsupported: Vec<FieldError> = Vec::new();
    for pair in uri.query().unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let raw = pair.split_once('=').map_or(pair, |(name, _)| name);
        let name = percent_encoding::percent_decode_str(raw)
            .decode_utf8_lossy()
            .into_owned();
        if SEARCH_PARAMETERS.contains(&name.as_str()) || seen.contains(&name) {
            continue;
        }
        if seen.len() <= MAX_LISTED_ERRORS {
            unsupported.push(FieldError::new(
                format!("/query/{name}"),
                "not_supported",
                format!(
                    "this search does not support it (Prefer: handling=strict); it takes {}",
                    SEARCH_PARAMETERS.join(", ")
                ),
                format!(
                    "cette recherche ne prend pas en charge ce paramètre (Prefer: handling=strict) ; elle accepte {}",
                    SEARCH_PARAMETERS.join(", ")
                ),
            ));
        }
        seen.insert(name);
    }
    // As the problem would list them: the first ones, then how many more.
    if seen.len() > MAX_LISTED_ERRORS + 1 {
        unsupported.truncate(MAX_LISTED_ERRORS);
        unsupported.push(FieldError::too_many("", seen.len() - MAX_LISTED_ERRORS, false));
    }
    if unsupported.is_empty() {
        Ok(())
    } else {
        Err(ApiError::validation(unsupported))
    }
}

/// A person's coverages, as a FHIR search.
///
/// The same coverages as `GET /v1/coverages?beneficiary=`: those you hold (all of them for
/// operators and auditors), an empty Bundle when you hold none. `beneficiary` is required (422).
#[utoipa::path(
    get,
    path = "/fhir/r4/Coverage",
    operation_id = "fhir_search_coverage",
    tag = "fhir",
    params(
        CoverageSearch,
        ("Prefer" = Option<String>, Header, description = "`handling=strict`: a parameter the search does not support is 422 (`not_supported`) instead of ignored (R4 search.html)"),
    ),
    responses(
        (status = 200, description = "A searchset Bundle of Coverage, ordered by id", body = Bundle, content_type = "application/fhir+json"),
                (status = 422, description = "`beneficiary` missing or a reference to another resource type (`invalid_reference`), a bad `_count` or `cursor`, or, with `Prefer: handling=strict`, a parameter the search does not support (`not_supported`; ignored otherwise)", body = super::outcome::OperationOutcome, content_type = "application/fhir+json"),
    ),
    security(("bearer" = ["registry:read"]))
)]
pub async fn search_coverage(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadRegistry>,
    headers: axum::http::HeaderMap,
    uri: axum::http::Uri,
    AppQuery(query): AppQuery<CoverageSearch>,
) -> Result<Fhir<Bundle>, ApiError> {
    strict_search(&headers, &uri)?;
    let root = super::public_base(state.config.public_url.as_deref(), &headers);
    let ours = super::request::fhir_base(&root);
    let beneficiary = query
        .beneficiary
        .as_deref()
        .map(|b| super::request::relative(&ours, b))
        .map(|b| b.strip_prefix("Patient/").unwrap_or(b))
        .filter(|b| !b.is_empty())
        .ok_or_else(|| ApiError::field(FieldError::required("/query/beneficiary")))?;
    // No beneficiary id holds a `/`: what still does is a reference to another resource type,
    // which names no Patient (an empty Bundle would say that person holds no coverage).
    if beneficiary.contains('/') {
        return Err(ApiError::field(FieldError::new(
            "/query/beneficiary",
            "invalid_reference",
            "must be Patient/<id>, the bare id, or Patient/<id> under this server's /fhir/r4/",
            "doit être Patient/<id>, l'id seul ou Patient/<id> sous le /fhir/r4/ de ce serveur",
        )));
    }
    // Its cursors name the person as the search reads it: `Patient/x` and `x` are one search,
    // and the `next` link (written with `Patient/`) follows the first page however it was asked.
    let list = format!("/fhir/r4/Coverage?beneficiary={beneficiary}");
    let page = PageRequest::parse_list(&list, query.count.as_deref(), query.cursor.as_deref()).map_err(|errors| {
        ApiError::validation(
            errors
                .into_iter()
                .map(|mut e| {
                    if e.field == "/query/limit" {
                        e.field = "/query/_count".into();
                    }
                    e
                })
                .collect(),
        )
    })?;
    let result = crate::routes::registry::coverages_of(&state, &auth.caller, beneficiary, &page).await?;
    let escaped = percent_encoding::utf8_percent_encode(beneficiary, QUERY_VALUE);
    let base = format!(
        "{root}/fhir/r4/Coverage?beneficiary=Patient/{escaped}&_count={}",
        page.limit
    );
    let mut link = vec![BundleLink {
        relation: "self",
        url: match &query.cursor {
            Some(c) => format!("{base}&cursor={c}"),
            None => base.clone(),
        },
    }];
    if let Some(next) = result.next_key.as_deref() {
        link.push(BundleLink {
            relation: "next",
            url: format!("{base}&cursor={}", encode_list_cursor(&list, next)),
        });
    }
    Ok(Fhir(Bundle {
        resource_type: "Bundle",
        type_: "searchset",
        link,
        entry: result
            .items
            .into_iter()
            .map(|c| BundleEntry {
                full_url: match root.as_str() {
                    "" => format!("urn:uuid:{}", c.id),
                    root => format!("{root}/fhir/r4/Coverage/{}", c.id),
                },
                resource: c.into(),
                search: SearchMode { mode: "match" },
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> axum::http::HeaderMap {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("prefer", "handling=strict".parse().unwrap());
        headers
    }

    fn errors(query: &str) -> Vec<FieldError> {
        let uri: axum::http::Uri = format!("/fhir/r4/Coverage?{query}").parse().unwrap();
        match strict_search(&strict(), &uri) {
            Ok(()) => Vec::new(),
            Err(ApiError::Validation(errors)) => errors,
            Err(other) => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn strict_search_names_each_unknown_parameter_once() {
        let e = errors("beneficiary=Patient/x&a=1&b=2&a=3&_count=5&c%20d=4");
        let fields: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["/query/a", "/query/b", "/query/c d"]);
        assert!(e.iter().all(|e| e.code == "not_supported"));
        assert!(errors("beneficiary=Patient/x&_count=5&cursor=c&_format=json").is_empty());
    }

    #[test]
    fn strict_search_bounds_thousands_of_unknown_parameters() {
        // Ten thousand names (and a few again) in the most a URI may hold, 64 KiB.
        let query: Vec<String> = (0..10_000).map(|i| format!("p{i}")).collect();
        let e = errors(&format!("beneficiary=Patient/x&{}&p0&p1=2&p9999", query.join("&")));
        assert_eq!(e.len(), MAX_LISTED_ERRORS + 1);
        assert_eq!(e[0].field, "/query/p0");
        assert_eq!(
            e[MAX_LISTED_ERRORS - 1].field,
            format!("/query/p{}", MAX_LISTED_ERRORS - 1)
        );
        let last = &e[MAX_LISTED_ERRORS];
        assert_eq!(last.code, "too_many_errors");
        assert_eq!(last.field, "");
        assert!(
            last.en
                .starts_with(&format!("{} more faults", 10_000 - MAX_LISTED_ERRORS)),
            "{}",
            last.en
        );
    }

    #[test]
    fn strict_search_lists_one_past_the_bound_in_full() {
        // As the problem document does: 101 faults are all listed, 102 are 100 and a count.
        let query: Vec<String> = (0..=MAX_LISTED_ERRORS).map(|i| format!("p{i}=1")).collect();
        let e = errors(&query.join("&"));
        assert_eq!(e.len(), MAX_LISTED_ERRORS + 1);
        assert!(e.iter().all(|e| e.code == "not_supported"));
    }
}
