//! The FHIR R4 elements the façade writes: only those it fills, each as FHIR names it, so the
//! OpenAPI document shows exactly what a client receives.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// Code systems of the service's own vocabularies (API.md §7).
pub const CATEGORY_SYSTEM: &str = "urn:passerelle:category";
pub const CARE_LEVEL_SYSTEM: &str = "urn:passerelle:care-level";
pub const ORGANIZATION_SYSTEM: &str = "urn:passerelle:organization";
pub const LAYER_SYSTEM: &str = "urn:passerelle:layer";
pub const REASON_SYSTEM: &str = "urn:passerelle:reason";
pub const BENEFIT_SYSTEM: &str = "urn:passerelle:benefit";
/// Followed by `<country>:<type>`, e.g. `urn:passerelle:national-id:TG:NIU`.
pub const NATIONAL_ID_PREFIX: &str = "urn:passerelle:national-id:";
/// Followed by the organisation, e.g. `urn:passerelle:member-number:mut-tsevie`.
pub const MEMBER_NUMBER_PREFIX: &str = "urn:passerelle:member-number:";
/// Followed by the provider, e.g. `urn:passerelle:claim-id:cms-tsevie`: its `external_id`s.
pub const CLAIM_ID_PREFIX: &str = "urn:passerelle:claim-id:";
pub const ADJUDICATION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/adjudication";
pub const RELATIONSHIP_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/subscriber-relationship";
pub const COVERAGE_CLASS_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/coverage-class";
pub const ICD10_SYSTEM: &str = "http://hl7.org/fhir/sid/icd-10";

/// A resource's metadata: its version.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"versionId": "2"}))]
pub struct Meta {
    /// The resource's `version` under `/v1`, as text: 1 when created, one more with each change,
    /// so that a client holding a copy can tell whether it is current.
    pub version_id: String,
}

impl Meta {
    pub fn of(version: u32) -> Meta {
        Meta {
            version_id: version.to_string(),
        }
    }
}

/// A code in a code system.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Coding {
    /// The code system, e.g. `urn:passerelle:category`.
    pub system: String,
    /// The code in it, e.g. `consultation`.
    pub code: String,
    /// The code's meaning for people, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub display: Option<String>,
}

/// A concept, as one coding.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CodeableConcept {
    /// One coding.
    pub coding: Vec<Coding>,
}

impl CodeableConcept {
    pub fn of(system: &str, code: &str) -> CodeableConcept {
        CodeableConcept {
            coding: vec![Coding {
                system: system.to_owned(),
                code: code.to_owned(),
                display: None,
            }],
        }
    }
}

/// An identifier in a system.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Identifier {
    /// The namespace of the value, e.g. `urn:passerelle:organization`.
    pub system: String,
    /// The identifier in that namespace.
    pub value: String,
}

/// A reference to a resource, by its id (`Patient/…`, `Coverage/…`) or by an identifier.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Reference {
    /// `<resource type>/<id>`, e.g. `Patient/01937f0e-…`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reference: Option<String>,
    /// The type of the resource referred to, e.g. `Organization`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub type_: Option<String>,
    /// The resource's identifier, when it is named that way.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub identifier: Option<Identifier>,
    /// Text naming it, when nothing else does.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub display: Option<String>,
}

impl Reference {
    pub fn to(resource: &str, id: &str) -> Reference {
        Reference {
            reference: Some(format!("{resource}/{id}")),
            ..Reference::default()
        }
    }

    /// A mutuelle, scheme or health facility, by its organisation id.
    pub fn organization(id: &str) -> Reference {
        Reference {
            type_: Some("Organization".into()),
            identifier: Some(Identifier {
                system: ORGANIZATION_SYSTEM.into(),
                value: id.to_owned(),
            }),
            ..Reference::default()
        }
    }
}

/// An amount of XOF.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Money {
    /// Whole francs: XOF has no minor unit.
    pub value: i64,
    /// Always `XOF`.
    pub currency: &'static str,
}

impl Money {
    pub fn xof(value: i64) -> Money {
        Money { value, currency: "XOF" }
    }
}

/// From `start` to `end`, both included.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Period {
    /// The first day, `YYYY-MM-DD`.
    pub start: String,
    /// The last day, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub end: Option<String>,
}

/// A part of a complex extension.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionPart {
    /// `code` or `until`.
    pub url: String,
    /// The reason's code (`urn:passerelle:reason`) and its message as `display`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub value_coding: Option<Coding>,
    /// The first day on which the reason no longer holds; absent when no such day is known, or when
    /// the coverage never reaches it (it, or its household, ends first, it was terminated without an end date, or the child
    /// is then past the age limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub value_date: Option<String>,
}

/// What FHIR's base resources have no element for: a coverage's own status and paid-through
/// date, a reason a coverage does not pay (`urn:passerelle:reason`, with the parts `code` and
/// `until`), a claim's status, the payer of a share.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Extension {
    /// What it says: `urn:passerelle:coverage-status`, `urn:passerelle:paid-through`,
    /// `urn:passerelle:principal-coverage`, `urn:passerelle:reason`,
    /// `urn:passerelle:claim-status` or `urn:passerelle:payer`.
    pub url: String,
    /// A status.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub value_code: Option<String>,
    /// A date, `YYYY-MM-DD`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub value_date: Option<String>,
    /// A coverage or an organisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub value_reference: Option<Reference>,
    /// The parts of a reason.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<ExtensionPart>,
}

impl Extension {
    pub fn code(url: &str, code: &str) -> Extension {
        Extension {
            url: url.to_owned(),
            value_code: Some(code.to_owned()),
            value_date: None,
            value_reference: None,
            extension: Vec::new(),
        }
    }

    pub fn date(url: &str, date: String) -> Extension {
        Extension {
            value_code: None,
            value_date: Some(date),
            ..Extension::code(url, "")
        }
    }

    pub fn reference(url: &str, reference: Reference) -> Extension {
        Extension {
            value_code: None,
            value_reference: Some(reference),
            ..Extension::code(url, "")
        }
    }

    /// A reason a coverage does not pay: its code and message, and the day it ends, if known.
    pub fn reason(code: &str, message: &str, until: Option<chrono::NaiveDate>) -> Extension {
        let mut parts = vec![ExtensionPart {
            url: "code".into(),
            value_coding: Some(Coding {
                system: REASON_SYSTEM.into(),
                code: code.to_owned(),
                display: Some(message.to_owned()),
            }),
            value_date: None,
        }];
        if let Some(until) = until {
            parts.push(ExtensionPart {
                url: "until".into(),
                value_coding: None,
                value_date: Some(until.to_string()),
            });
        }
        Extension {
            value_code: None,
            extension: parts,
            ..Extension::code(REASON_SYSTEM, "")
        }
    }
}

/// A rate in basis points as FHIR's percent, exactly: 8000 → `80`, 7550 → `75.5`. The decimal
/// text is written first, so the number is the shortest form of that text.
pub fn percent(bp: u32) -> Value {
    serde_json::from_str(&percent_text(bp)).unwrap_or(Value::Null)
}

/// The decimal text of [`percent`], for elements whose type is a string.
pub fn percent_text(bp: u32) -> String {
    match (bp / 100, bp % 100) {
        (whole, 0) => whole.to_string(),
        (whole, frac) if frac % 10 == 0 => format!("{whole}.{}", frac / 10),
        (whole, frac) => format!("{whole}.{frac:02}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percents_are_exact_decimals() {
        assert_eq!(percent_text(8000), "80");
        assert_eq!(percent_text(7550), "75.5");
        assert_eq!(percent_text(7525), "75.25");
        assert_eq!(percent_text(7505), "75.05");
        assert_eq!(percent_text(1), "0.01");
        assert_eq!(percent_text(10000), "100");
        assert_eq!(percent_text(0), "0");
    }
}
