//! `GET /fhir/r4/metadata`: what the façade serves, as FHIR's CapabilityStatement. Open, as
//! FHIR clients read it before they have a token.

use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::Fhir;

/// What this server does, for FHIR clients.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"resourceType": "CapabilityStatement", "status": "active", "date": "2026-12-01",
    "kind": "instance", "software": {"name": "Passerelle", "version": "0.1.0"},
    "implementation": {"description": "Passerelle: mutuelles and national health-insurance schemes"},
    "fhirVersion": "4.0.1", "format": ["json"],
    "rest": [{"mode": "server",
              "security": {"service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "OAuth"}]}],
                           "description": "Authorization: Bearer <JWT>, as for /v1 (API.md §2): the scopes registry:read, eligibility:check, claims:submit and claims:read."},
              "resource": [{"type": "Patient", "interaction": [{"code": "read"}]},
                           {"type": "Coverage", "interaction": [{"code": "read"}, {"code": "search-type"}],
                            "searchParam": [{"name": "beneficiary", "type": "reference"}]},
                           {"type": "CoverageEligibilityRequest", "interaction": [{"code": "create"}]},
                           {"type": "Claim", "interaction": [{"code": "create"}]},
                           {"type": "ClaimResponse", "interaction": [{"code": "read"}]}]}]}))]
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

fn statement() -> CapabilityStatement {
    let type_ = |code: &str| json!({"code": code});
    CapabilityStatement {
        resource_type: "CapabilityStatement",
        status: "active",
        date: "2026-12-01",
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
                {"type": "Patient", "interaction": [type_("read")]},
                {"type": "Coverage", "interaction": [type_("read"), type_("search-type")],
                 "searchParam": [{"name": "beneficiary", "type": "reference"}]},
                {"type": "CoverageEligibilityRequest", "interaction": [type_("create")]},
                {"type": "Claim", "interaction": [type_("create")]},
                {"type": "ClaimResponse", "interaction": [type_("read")]}
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
