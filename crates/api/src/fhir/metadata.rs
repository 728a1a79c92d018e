//! `GET /fhir/r4/metadata`: what the façade serves, as FHIR's CapabilityStatement. Open, as
//! FHIR clients read it before they have a token.

use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::Fhir;

// What a client must know of each resource beyond R4's interactions: what "create" means here,
// and what the façade requires that R4 does not.
const PATIENT_DOC: &str = "Read by id, as GET /v1/beneficiaries/{id}: a person the caller may see (404 otherwise).";
const COVERAGE_DOC: &str = "Read by id; search by beneficiary, which is required, as GET /v1/coverages.";
const BENEFICIARY_DOC: &str = "Required: Patient/<id>, the bare id, or this server's <base>/fhir/r4/Patient/<id>.";
const ELIGIBILITY_DOC: &str =
    "Nothing is stored: a POST answers 200 with a CoverageEligibilityResponse. One item, whose care \
level is the extension urn:passerelle:care-level (required).";
const CLAIM_DOC: &str =
    "A POST answers 201 with the ClaimResponse, read back at ClaimResponse/{id} (Location names the /v1 \
claim). The Idempotency-Key header is required (428 without it), as for POST /v1/claims.";
const CLAIM_RESPONSE_DOC: &str = "Read by the claim's id.";

/// What this server does, for FHIR clients.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"resourceType": "CapabilityStatement", "status": "active", "date": "2026-12-06",
    "kind": "instance", "software": {"name": "Passerelle", "version": "0.1.0"},
    "implementation": {"description": "Passerelle: mutuelles and national health-insurance schemes"},
    "fhirVersion": "4.0.1", "format": ["json"],
    "rest": [{"mode": "server",
              "security": {"service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "OAuth"}]}],
                           "description": "Authorization: Bearer <JWT>, as for /v1 (API.md §2): the scopes registry:read, eligibility:check, claims:submit and claims:read."},
              "resource": [{"type": "Patient", "interaction": [{"code": "read"}], "versioning": "versioned", "conditionalRead": "not-match", "documentation": PATIENT_DOC},
                           {"type": "Coverage", "interaction": [{"code": "read"}, {"code": "search-type"}], "versioning": "versioned", "conditionalRead": "not-match",
                            "searchParam": [{"name": "beneficiary", "type": "reference", "documentation": BENEFICIARY_DOC}],
                            "documentation": COVERAGE_DOC},
                           {"type": "CoverageEligibilityRequest", "interaction": [{"code": "create"}], "documentation": ELIGIBILITY_DOC},
                           {"type": "Claim", "interaction": [{"code": "create"}], "documentation": CLAIM_DOC},
                           {"type": "ClaimResponse", "interaction": [{"code": "read"}], "versioning": "versioned", "conditionalRead": "not-match", "documentation": CLAIM_RESPONSE_DOC}]}]}))]
pub struct CapabilityStatement {
    /// `CapabilityStatement`.
    pub resource_type: &'static str,
    /// `active`.
    pub status: &'static str,
    /// The date of this version of the statement.
    pub date: &'static str,
    /// `instance`.
    pub kind: &'static str,
    /// Passerelle and its version.
    #[schema(value_type = Object)]
    pub software: Value,
    /// This installation (R4 wants it of an `instance` statement).
    #[schema(value_type = Object)]
    pub implementation: Value,
    /// `4.0.1`.
    pub fhir_version: &'static str,
    /// `json`.
    pub format: Vec<&'static str>,
    /// The resources and interactions served, and the bearer security of `/v1`.
    #[schema(value_type = Vec<Object>)]
    pub rest: Vec<Value>,
}

pub(crate) fn statement() -> CapabilityStatement {
    let type_ = |code: &str| json!({"code": code});
    CapabilityStatement {
        resource_type: "CapabilityStatement",
        status: "active",
        date: "2026-12-06",
        kind: "instance",
        software: json!({"name": "Passerelle", "version": env!("CARGO_PKG_VERSION")}),
        implementation: json!({"description": "Passerelle: mutuelles and national health-insurance schemes"}),
        fhir_version: "4.0.1",
        format: vec!["json"],
        rest: vec![json!({
            "mode": "server",
            "security": {
                "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "OAuth"}]}],
                "description": "Authorization: Bearer <JWT>, as for /v1 (API.md §2): the scopes registry:read, eligibility:check, claims:submit and claims:read."
            },
            "resource": [
                {"type": "Patient", "interaction": [type_("read")], "versioning": "versioned", "conditionalRead": "not-match", "documentation": PATIENT_DOC},
                {"type": "Coverage", "interaction": [type_("read"), type_("search-type")], "versioning": "versioned", "conditionalRead": "not-match",
                 "searchParam": [{"name": "beneficiary", "type": "reference", "documentation": BENEFICIARY_DOC}],
                 "documentation": COVERAGE_DOC},
                {"type": "CoverageEligibilityRequest", "interaction": [type_("create")], "documentation": ELIGIBILITY_DOC},
                {"type": "Claim", "interaction": [type_("create")], "documentation": CLAIM_DOC},
                {"type": "ClaimResponse", "interaction": [type_("read")], "versioning": "versioned", "conditionalRead": "not-match", "documentation": CLAIM_RESPONSE_DOC}
            ]
        })],
    }
}

/// What the FHIR façade serves (no token needed).
///
/// FHIR R4's CapabilityStatement of this server: the resources and interactions of the façade
/// (Patient and Coverage reads, a Coverage search by beneficiary, CoverageEligibilityRequest
/// and Claim creation, ClaimResponse reads) and the bearer tokens it asks for, which are those
/// of `/v1`. FHIR clients read it before they hold a token, hence open.
#[utoipa::path(
    get,
    path = "/fhir/r4/metadata",
    operation_id = "fhir_metadata",
    tag = "fhir",
    responses((status = 200, description = "The CapabilityStatement", body = CapabilityStatement, content_type = "application/fhir+json")),
    security(())
)]
pub async fn metadata() -> Fhir<CapabilityStatement> {
    Fhir(statement())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The OpenAPI example is written out by hand: it must stay the statement served.
    #[test]
    fn the_documented_example_is_the_statement_served() {
        let document = serde_json::to_value(crate::openapi::document()).expect("the document serializes");
        let mut example = document["components"]["schemas"]["CapabilityStatement"]["example"].clone();
        example["software"]["version"] = json!(env!("CARGO_PKG_VERSION"));
        assert_eq!(serde_json::to_value(statement()).expect("serializes"), example);
    }
}
