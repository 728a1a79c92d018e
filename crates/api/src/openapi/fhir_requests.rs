//! The two FHIR resources the façade reads (API.md §7), element by element: what each element
//! read must hold, and the `/v1` rule that judges it. They are open objects, as FHIR resources
//! are: an element not listed here is ignored, never refused, so that a client may send the
//! whole R4 resource its own model writes (`type`, `created`, `insurer`, `insurance`…).
//!
//! Written as JSON because the façade reads the resource as JSON (`fhir/request.rs`), not
//! through a Rust type that could derive its schema. A schema says only what a schema can
//! check; the rest (a reference and an identifier of ours given together, an item's `net`
//! against its price, the care level's extension among others) is in the descriptions.

use serde_json::{json, Value};
use utoipa::openapi::{OpenApi as Document, RefOr};

use super::client_shapes::schema;
use crate::fhir::model::{
    CARE_LEVEL_SYSTEM, CATEGORY_SYSTEM, ICD10_SYSTEM, MEMBER_NUMBER_PREFIX, NATIONAL_ID_PREFIX, ORGANIZATION_SYSTEM,
};
use crate::routes::claims::{MAX_DIAGNOSES, MAX_LINES, MAX_QUANTITY};

// The quantity's description spells the limit out.
const _: () = assert!(MAX_QUANTITY == 1_000_000);

fn reference(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// A reference to a schema with a description of its own for this member.
fn described(name: &str, description: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}"), "description": description})
}

/// A reference written relative (`Patient/<id>`) or absolute on this server's FHIR base.
fn reference_pattern(resource: &str) -> String {
    format!("^(?:[A-Za-z][A-Za-z0-9+.-]*://[^/]+(?:/[^/]+)*/[Ff][Hh][Ii][Rr]/[Rr]4/)?{resource}/[^/]+$")
}

/// An empty list, or left out: R4 forbids processing a resource with a modifier the server
/// does not understand, and the façade understands none.
fn no_modifiers() -> Value {
    json!({
        "type": "array",
        "items": {"type": "object"},
        "maxItems": 0,
        "description": "Refused when it holds an extension (422 `unsupported_modifier`): this service understands no modifier extension, and R4 forbids processing the resource with one.",
    })
}

/// The shared parts, then the two resources.
fn schemas() -> Vec<(&'static str, Value)> {
    vec![
        (
            "FhirPatientReference",
            json!({
                "description": "The person, in one of two forms: by `reference`, or by an `identifier` in one of Passerelle's systems (422 `ambiguous_person` when a reference and an identifier of Passerelle's are both given). Beside a reference, an identifier in another system (a hospital information system's) is ignored; without one, it is 422 `unknown_value`.",
                "anyOf": [
                    {
                        "type": "object",
                        "title": "By reference",
                        "required": ["reference"],
                        "properties": {
                            "reference": {
                                "type": "string",
                                "pattern": reference_pattern("Patient"),
                                "description": "`Patient/<beneficiary id>`, or the same absolute on this server's FHIR base (`https://passerelle.example.org/fhir/r4/Patient/<id>`); any other is 422 `invalid_reference`.",
                            },
                        },
                        "additionalProperties": true,
                    },
                    {
                        "type": "object",
                        "title": "By identifier",
                        "required": ["identifier"],
                        "properties": {"identifier": reference("FhirPersonIdentifier")},
                        "additionalProperties": true,
                    },
                ],
                "example": {"identifier": {"system": format!("{MEMBER_NUMBER_PREFIX}mut-tsevie"), "value": "TSV-0042"}},
            }),
        ),
        (
            "FhirPersonIdentifier",
            json!({
                "type": "object",
                "description": "A person by national id or by member number.",
                "required": ["system", "value"],
                "properties": {
                    "system": {
                        "type": "string",
                        "pattern": format!("^(?:{NATIONAL_ID_PREFIX}[^:]+:[^:]+|{MEMBER_NUMBER_PREFIX}.+)$"),
                        "description": format!("`{NATIONAL_ID_PREFIX}<country>:<type>` (`…:TG:NIU`: the country's two letters, and a type its rules know, 422 `unknown_national_id_type` otherwise) or `{MEMBER_NUMBER_PREFIX}<organisation id>`."),
                    },
                    "value": {
                        "type": "string",
                        "minLength": 1,
                        "description": "The national id's value or the member number, read as `/v1` reads `national_id.value` and `member_number`.",
                    },
                },
                "additionalProperties": true,
                "example": {"system": format!("{NATIONAL_ID_PREFIX}TG:NIU"), "value": "1234 5678 9012"},
            }),
        ),
        (
            "FhirOrganizationReference",
            json!({
                "description": format!("An organisation, by `reference`, or by an `identifier` in `{ORGANIZATION_SYSTEM}` (422 `ambiguous_reference` when a reference and an identifier in that system are both given). Beside a reference, an identifier in another system (a registry's) is ignored; without one, it is 422 `invalid_reference`."),
                "anyOf": [
                    {
                        "type": "object",
                        "title": "By reference",
                        "required": ["reference"],
                        "properties": {
                            "reference": {
                                "type": "string",
                                "pattern": reference_pattern("Organization"),
                                "description": "`Organization/<id>`, or the same absolute on this server's FHIR base.",
                            },
                        },
                        "additionalProperties": true,
                    },
                    {
                        "type": "object",
                        "title": "By identifier",
                        "required": ["identifier"],
                        "properties": {
                            "identifier": {
                                "type": "object",
                                "required": ["system", "value"],
                                "properties": {
                                    "system": {"type": "string", "enum": [ORGANIZATION_SYSTEM]},
                                    "value": {"type": "string", "minLength": 1, "description": "The organisation's id."},
                                },
                                "additionalProperties": true,
                            },
                        },
                        "additionalProperties": true,
                    },
                ],
                "example": {"reference": "Organization/cms-tsevie"},
            }),
        ),
        (
            "FhirCoding",
            json!({
                "type": "object",
                "description": "A code in a system. Of a concept's codings, the first in the system the element reads is taken; one without a `system` is read as in it.",
                "properties": {
                    "system": {"type": "string", "description": "The code system."},
                    "code": {"type": "string", "description": "The code in it."},
                    "display": {"type": "string", "description": "Ignored, but for a Claim item's `productOrService`, where it is the line's description when `text` is absent."},
                },
                "additionalProperties": true,
                "example": {"system": CATEGORY_SYSTEM, "code": "consultation"},
            }),
        ),
        (
            "FhirCodeableConcept",
            json!({
                "type": "object",
                "description": "A concept: the code is read from its `coding` (422 `required` when none is in the element's system).",
                "properties": {
                    "coding": {"type": "array", "items": reference("FhirCoding")},
                    "text": {"type": "string", "description": "Ignored, but for a Claim item's `productOrService`, where it is the line's description."},
                },
                "additionalProperties": true,
                "example": {"coding": [{"system": CARE_LEVEL_SYSTEM, "code": "health_center"}]},
            }),
        ),
        (
            "FhirMoney",
            json!({
                "type": "object",
                "description": "An amount of XOF.",
                "required": ["value"],
                "properties": {
                    "value": {
                        "type": "integer",
                        "format": "int64",
                        "minimum": 0,
                        "maximum": 1_000_000_000_000_i64,
                        "description": "Whole francs, 0 to 10^12 (a unit price of a Claim at least 1; 422 `out_of_range`); a FHIR decimal holding a whole number (`10000.0`) is that number, a fraction is 422 `invalid_type`.",
                    },
                    "currency": {"type": "string", "pattern": "^[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*XOF[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$", "description": "`XOF` when given (422 `unknown_value` otherwise)."},
                },
                "additionalProperties": true,
                "example": {"value": 10000, "currency": "XOF"},
            }),
        ),
        (
            "FhirQuantity",
            json!({
                "type": "object",
                "description": "A number of units. Left out, one unit; given, it must hold `value` (422 `required`), and anything but an object is 422 `invalid_type`.",
                "required": ["value"],
                "properties": {
                    "value": {
                        "type": "integer",
                        "format": "int64",
                        "minimum": 1,
                        "maximum": MAX_QUANTITY,
                        "description": "1 to 1,000,000; a FHIR decimal holding a whole number (`2.0`) is that number.",
                    },
                    "comparator": {"type": "string", "description": "Refused whatever it holds (422 `unsupported_modifier`): `>= 3` units is not 3 units."},
                },
                "additionalProperties": true,
                "example": {"value": 2},
            }),
        ),
        (
            "FhirPeriod",
            json!({
                "type": "object",
                "description": "From `start` to `end`: FHIR dates or dateTimes (`2026-11-28`, `2026-11-28T09:30:00+00:00`).",
                "properties": {
                    "start": {"type": "string"},
                    "end": {"type": "string"},
                },
                "additionalProperties": true,
                "example": {"start": "2026-11-28T09:30:00+00:00", "end": "2026-11-28T11:00:00+00:00"},
            }),
        ),
        (
            "FhirCareLevelExtension",
            json!({
                "type": "object",
                "description": format!("An extension. The one whose `url` is `{CARE_LEVEL_SYSTEM}` gives the care level in `valueCode`; any other is ignored."),
                "properties": {
                    "url": {"type": "string"},
                    "valueCode": {"type": "string", "description": "`health_post`, `health_center`, `hospital` or `university_hospital` (422 `unknown_value` otherwise)."},
                },
                "additionalProperties": true,
                "example": {"url": CARE_LEVEL_SYSTEM, "valueCode": "health_center"},
            }),
        ),
        (
            "FhirEligibilityItem",
            json!({
                "type": "object",
                "description": "The care asked about.",
                "required": ["extension"],
                "properties": {
                    "extension": {
                        "type": "array",
                        "items": reference("FhirCareLevelExtension"),
                        "description": format!("Must hold the extension `{CARE_LEVEL_SYSTEM}` with a `valueCode` (422 `required` otherwise): R4's item has no element for the care level."),
                    },
                    "category": described("FhirCodeableConcept", &format!("The category of care, a code in `{CATEGORY_SYSTEM}`: `consultation`, `hospitalization`, `pharmacy`, `laboratory`, `imaging`, `maternity`, `surgery`, `dental`, `optical` or `emergency`. Optional, as `/v1`'s `category`.")),
                    "quantity": described("FhirQuantity", "How many units, for the estimate (left out: 1)."),
                    "unitPrice": described("FhirMoney", "The price of one unit: with `quantity`, the amount to estimate (`/v1` `amount_xof`, 0 to 10^12). Left out, no estimate."),
                    "productOrService": {"type": null, "description": "Ignored: the answer's item names the care by its category, or else its care level."},
                    "modifierExtension": no_modifiers(),
                },
                "additionalProperties": true,
                "example": {
                    "extension": [{"url": CARE_LEVEL_SYSTEM, "valueCode": "health_center"}],
                    "category": {"coding": [{"system": CATEGORY_SYSTEM, "code": "consultation"}]},
                    "unitPrice": {"value": 10000, "currency": "XOF"},
                },
            }),
        ),
        (
            "CoverageEligibilityRequest",
            json!({
                "type": "object",
                "description": "A FHIR R4 CoverageEligibilityRequest: `POST /v1/eligibility-checks` in FHIR's form. Elements not listed are ignored. Elements are typed as R4 types them, but the façade does not judge what it does not read (a coding in another system, a second identifier). A member sent as `null` is read as left out (FHIR JSON has no nulls). `implicitRules` is refused (422 `unsupported_modifier`), and so is a `modifierExtension` anywhere; a NUL character anywhere in the body is refused before anything else (422 `invalid_character`).",
                "required": ["resourceType", "patient", "item"],
                "properties": {
                    "resourceType": {"type": "string", "enum": ["CoverageEligibilityRequest"]},
                    "status": {"type": "string", "enum": ["active"], "description": "`active` when given (422 `unknown_value` otherwise)."},
                    "purpose": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "enum": ["auth-requirements", "benefits", "discovery", "validation"]},
                        "description": "R4's purposes, given back in the answer; left out, `validation`, and `benefits` too when an amount is asked (`unitPrice`). An empty list is 422 `empty`.",
                    },
                    "identifier": {
                        "type": "array",
                        "minItems": 1,
                        "prefixItems": [{
                            "type": ["object", "null"],
                            "properties": {
                                "system": {"type": "string", "pattern": "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"},
                                "value": {"type": "string", "pattern": "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"},
                            },
                            "additionalProperties": true,
                        }],
                        "items": {"type": null, "description": "Identifiers after the first are ignored."},
                        "description": "The client's own reference of the request; the first is given back as the answer's `request`, so neither its `system` nor its `value` may be empty (422 `empty`).",
                    },
                    "patient": described("FhirPatientReference", "Who: 404 when unknown, or not visible to the caller."),
                    "servicedDate": {"type": "string", "pattern": "^[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*$", "description": "The day of care, `YYYY-MM-DD` (white space around it ignored), from 1900-01-01 to one year ahead; left out, today."},
                    "servicedPeriod": described("FhirPeriod", "Refused (422 `not_supported`): a check is for one day, send `servicedDate`."),
                    "item": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": 1,
                        "items": reference("FhirEligibilityItem"),
                        "description": "Exactly one item: a second is 422 `too_many_items` at `item[1]` (send one request per item).",
                    },
                    "modifierExtension": no_modifiers(),
                },
                "additionalProperties": true,
                "example": {
                    "resourceType": "CoverageEligibilityRequest",
                    "status": "active",
                    "purpose": ["validation", "benefits"],
                    "patient": {"identifier": {"system": format!("{MEMBER_NUMBER_PREFIX}mut-tsevie"), "value": "TSV-0042"}},
                    "servicedDate": "2026-11-30",
                    "item": [{
                        "extension": [{"url": CARE_LEVEL_SYSTEM, "valueCode": "health_center"}],
                        "category": {"coding": [{"system": CATEGORY_SYSTEM, "code": "consultation"}]},
                        "unitPrice": {"value": 10000, "currency": "XOF"},
                    }],
                },
            }),
        ),
        (
            "FhirClaimDiagnosis",
            json!({
                "type": "object",
                "description": format!("A diagnosis: its ICD-10 code is read from `diagnosisCodeableConcept`, in `{ICD10_SYSTEM}` (`/v1` `diagnoses`)."),
                "required": ["diagnosisCodeableConcept"],
                "properties": {
                    "sequence": {"type": null, "description": "Ignored."},
                    "diagnosisCodeableConcept": reference("FhirCodeableConcept"),
                },
                "additionalProperties": true,
                "example": {"sequence": 1, "diagnosisCodeableConcept": {"coding": [{"system": ICD10_SYSTEM, "code": "B54"}]}},
            }),
        ),
        (
            "FhirClaimItem",
            json!({
                "type": "object",
                "description": "One line of the claim (`/v1` `lines[]`). Every item is on the same day and at the same care level (422 `inconsistent_items` at the item that differs).",
                "required": ["productOrService", "category", "locationCodeableConcept", "unitPrice"],
                "properties": {
                    "sequence": {"type": "integer", "minimum": 1, "description": "The item's place, from 1 in order (422 `out_of_order` otherwise)."},
                    "productOrService": described("FhirCodeableConcept", "`coding[0].code` is the line's `code` (1–50 characters); `text`, or else `coding[0].display`, its `description` (at most 500)."),
                    "category": described("FhirCodeableConcept", &format!("The category of care, a code in `{CATEGORY_SYSTEM}` (`consultation`, `pharmacy`…)")),
                    "locationCodeableConcept": described("FhirCodeableConcept", &format!("The care level, a code in `{CARE_LEVEL_SYSTEM}` (`health_post`, `health_center`, `hospital`, `university_hospital`).")),
                    "quantity": described("FhirQuantity", "How many units (left out: 1)."),
                    "unitPrice": described("FhirMoney", "The price of one unit, 1 to 10^12; `quantity × unitPrice` at most 10^12."),
                    "factor": {"type": "number", "enum": [1], "description": "1 when given (422 `not_supported`): the service bills quantity × unit price."},
                    "net": described("FhirMoney", "When given, quantity × unitPrice (422 `inconsistent_amount` otherwise)."),
                    "servicedDate": {"type": "string", "pattern": "^(?:[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]*|[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T.+)$", "description": "The day of care, `YYYY-MM-DD` (or a dateTime, whose day is taken)."},
                    "servicedPeriod": described("FhirPeriod", "Instead of `servicedDate`: a period that starts and ends on one day (its end not before its start, and on the start's day at the start's offset); any other is 422 `not_supported`."),
                    "modifierExtension": no_modifiers(),
                },
                "additionalProperties": true,
                "example": {
                    "sequence": 1,
                    "productOrService": {"coding": [{"system": "urn:oid:cms-tsevie:acts", "code": "CS-GEN"}], "text": "Consultation générale"},
                    "category": {"coding": [{"system": CATEGORY_SYSTEM, "code": "consultation"}]},
                    "locationCodeableConcept": {"coding": [{"system": CARE_LEVEL_SYSTEM, "code": "health_center"}]},
                    "servicedDate": "2026-11-28",
                    "quantity": {"value": 1},
                    "unitPrice": {"value": 10000, "currency": "XOF"},
                },
            }),
        ),
        (
            "FhirClaim",
            json!({
                "type": "object",
                "description": "A FHIR R4 Claim: `POST /v1/claims` in FHIR's form. Elements not listed (`type`, `created`, `insurer`, `priority`, `insurance`…) are ignored. Elements are typed as R4 types them, but the façade does not judge what it does not read (a coding in another system, a second identifier). A member sent as `null` is read as left out (FHIR JSON has no nulls). `implicitRules` is refused (422 `unsupported_modifier`), and so is a `modifierExtension` anywhere; a NUL character anywhere in the body is refused before anything else (422 `invalid_character`).",
                "required": ["resourceType", "identifier", "provider", "patient", "item"],
                "properties": {
                    "resourceType": {"type": "string", "enum": ["Claim"]},
                    "status": {"type": "string", "enum": ["active"], "description": "`active` when given (422 `unknown_value`)."},
                    "use": {"type": "string", "enum": ["claim"], "description": "`claim` when given (422 `unknown_value`): a preauthorization or a predetermination is not a claim to pay."},
                    "identifier": {
                        "type": "array",
                        "minItems": 1,
                        "prefixItems": [{
                            "type": "object",
                            "required": ["value"],
                            "properties": {
                                "system": {"type": null, "description": "Ignored (the answer writes `urn:passerelle:claim-id:<provider>`)."},
                                "value": {"type": "string", "minLength": 1, "description": "The claim's `external_id`: 1–100 characters in its kept NFKC form, not all white space, unique for its provider (409 with an issue `duplicate` when taken)."},
                            },
                            "additionalProperties": true,
                        }],
                        "items": {"type": null, "description": "Identifiers after the first are ignored."},
                        "description": "The first identifier's `value` is the claim's `external_id`, and required.",
                    },
                    "provider": described("FhirOrganizationReference", "The health facility that gave the care (`/v1` `provider`)."),
                    "patient": described("FhirPatientReference", "Who received the care."),
                    "billablePeriod": described("FhirPeriod", "Its `start`'s day is the day of care of the items that give none."),
                    "diagnosis": {
                        "type": "array",
                        "maxItems": MAX_DIAGNOSES,
                        "items": reference("FhirClaimDiagnosis"),
                        "description": format!("At most {MAX_DIAGNOSES} (422 `invalid_length` on `Claim.diagnosis`)."),
                    },
                    "item": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_LINES,
                        "items": reference("FhirClaimItem"),
                        "description": format!("1 to {MAX_LINES} items (more is one 422 `invalid_length` on `Claim.item`)."),
                    },
                    "total": described("FhirMoney", "When given, the sum of the items (422 `inconsistent_amount` otherwise)."),
                    "modifierExtension": no_modifiers(),
                },
                "additionalProperties": true,
            }),
        ),
    ]
}

/// Adds the resources' schemas and makes them the two request bodies' own.
pub(super) fn fhir_request_resources(doc: &mut Document) {
    let Some(components) = doc.components.as_mut() else {
        return;
    };
    for (name, value) in schemas() {
        components.schemas.insert(name.to_owned(), schema(value));
    }
    for (path, resource) in [
        ("/fhir/r4/Claim", "FhirClaim"),
        ("/fhir/r4/CoverageEligibilityRequest", "CoverageEligibilityRequest"),
    ] {
        let Some(body) = doc
            .paths
            .paths
            .get_mut(path)
            .and_then(|item| item.post.as_mut())
            .and_then(|op| op.request_body.as_mut())
        else {
            continue;
        };
        for content in body.content.values_mut() {
            content.schema = Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(resource)));
        }
    }
}
