//! `POST /fhir/r4/CoverageEligibilityRequest` → `CoverageEligibilityResponse`: the check of
//! `POST /v1/eligibility-checks`, read from and written as FHIR.

use axum::extract::State;
use passerelle_domain::money::{grouped_en, grouped_fr};
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::model::{
    percent_text, CodeableConcept, Extension, Money, Reference, ADJUDICATION_SYSTEM, BENEFIT_SYSTEM, CARE_LEVEL_SYSTEM,
    CATEGORY_SYSTEM,
};
use super::request::{self, Translation};
use super::{Fhir, FhirResource};
use crate::extract::{perm, Authorized};
use crate::problem::ApiError;
use crate::routes::claims::MAX_QUANTITY;
use crate::routes::eligibility::{answer, read_check, Answer};
use crate::state::AppState;

/// A benefit of a coverage for the item: a share, a rate or what the ceiling still allows.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Benefit {
    /// An adjudication category (`submitted`, `eligpercent`, `benefit`, `copay`, in
    /// `http://terminology.hl7.org/CodeSystem/adjudication`), or `remaining-ceiling` in
    /// `urn:passerelle:benefit`.
    #[serde(rename = "type")]
    pub type_: CodeableConcept,
    /// An amount of XOF: a share, the amount, or the ceiling left.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub allowed_money: Option<Money>,
    /// The rate in percent (`eligpercent`), e.g. `80` or `75.5`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub allowed_string: Option<String>,
}

/// What a coverage does for the item.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InsuranceItem {
    /// The item's category, as asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub category: Option<CodeableConcept>,
    /// Without a category: the care level, in `urn:passerelle:care-level`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub product_or_service: Option<CodeableConcept>,
    /// True when the product does not cover the care: its category excluded, or no rule of
    /// the version in force matching it (`EXCLUDED_CATEGORY`, `NOT_COVERED`).
    pub excluded: bool,
    /// `eligpercent` (the rate of the first matching rule, whenever `/v1` gives one: also for
    /// a coverage not in force, which `inforce` and the reasons tell); with an amount,
    /// `submitted` (the amount), `benefit` (this coverage's share of the estimate) and, on the
    /// payer that pays last (on the first coverage when none pays), `copay` (the patient's
    /// share); `remaining-ceiling` when the product
    /// has an annual ceiling. Absent when none applies.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub benefit: Vec<Benefit>,
}

/// The reasons that put a coverage out of force on the service date (R4's `inforce`); the
/// others are about what it pays, not whether it holds.
const NOT_IN_FORCE: [&str; 6] = [
    "NOT_STARTED",
    "SUSPENDED",
    "TERMINATED",
    "ENDED",
    "CONTRIBUTIONS_IN_ARREARS",
    "DEPENDANT_AGE_LIMIT",
];

/// One of the person's coverages and its answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Insurance {
    /// `Coverage/<id>`.
    pub coverage: Reference,
    /// R4's "in force": false when the coverage has not started on the service date (or the
    /// person is not born), is suspended, terminated or ended, lapsed for unpaid contributions,
    /// or the dependant is past the age limit. A coverage in force may still not pay: in its
    /// waiting period, for care it does not cover, or past its ceiling (the reasons say, and
    /// `item.excluded` and the benefits).
    pub inforce: bool,
    /// Each reason it does not pay: `urn:passerelle:reason` with the parts `code` (the reason
    /// code of `/v1`, its message as `display`) and `until` (a date), when known.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// The item asked about.
    pub item: Vec<InsuranceItem>,
}

/// The answer to a CoverageEligibilityRequest.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"resourceType": "CoverageEligibilityResponse", "status": "active", "purpose": ["validation", "benefits"],
    "patient": {"reference": "Patient/01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f"}, "servicedDate": "2026-11-30", "created": "2026-11-30",
    "request": {"type": "CoverageEligibilityRequest", "display": "CoverageEligibilityRequest"}, "outcome": "complete",
    "disposition": "eligible",
    "insurer": {"type": "Organization", "identifier": {"system": "urn:passerelle:organization", "value": "mut-tsevie"}},
    "insurance": [{"coverage": {"reference": "Coverage/01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70"}, "inforce": true,
        "item": [{"category": {"coding": [{"system": "urn:passerelle:category", "code": "consultation"}]}, "excluded": false,
            "benefit": [
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "eligpercent"}]}, "allowedString": "100"},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted"}]}, "allowedMoney": {"value": 10000, "currency": "XOF"}},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "benefit"}]}, "allowedMoney": {"value": 2000, "currency": "XOF"}},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "copay"}]}, "allowedMoney": {"value": 0, "currency": "XOF"}},
                {"type": {"coding": [{"system": "urn:passerelle:benefit", "code": "remaining-ceiling"}]}, "allowedMoney": {"value": 140000, "currency": "XOF"}}]}]},
        {"coverage": {"reference": "Coverage/01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f71"}, "inforce": true,
        "item": [{"category": {"coding": [{"system": "urn:passerelle:category", "code": "consultation"}]}, "excluded": false,
            "benefit": [
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "eligpercent"}]}, "allowedString": "80"},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted"}]}, "allowedMoney": {"value": 10000, "currency": "XOF"}},
                {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "benefit"}]}, "allowedMoney": {"value": 8000, "currency": "XOF"}}]}]}]}))]
pub struct CoverageEligibilityResponse {
    /// `CoverageEligibilityResponse`.
    pub resource_type: &'static str,
    /// `active`.
    pub status: &'static str,
    /// As asked; `["validation"]` when not given, plus `benefits` with an amount.
    pub purpose: Vec<String>,
    /// `Patient/<beneficiary id>`, whichever way the request named the person.
    pub patient: Reference,
    /// The date checked (today when not given).
    pub serviced_date: String,
    /// Today.
    pub created: String,
    /// The request's first identifier, when it had one.
    pub request: Reference,
    /// `complete`.
    pub outcome: &'static str,
    /// `eligible` or `not eligible`: whether at least one coverage pays.
    pub disposition: &'static str,
    /// The payer of the complementary share when one pays, else of the base share, else the
    /// holder of the first coverage, else the service's operator organisation
    /// (`PASSERELLE_OPERATOR_ORG`, by default `operator`).
    pub insurer: Reference,
    /// Every coverage the person holds, each with its own answer; absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub insurance: Vec<Insurance>,
}

/// FHIR R4's eligibility request purposes.
const PURPOSES: [&str; 4] = ["auth-requirements", "benefits", "discovery", "validation"];

fn adjudication(code: &str) -> CodeableConcept {
    CodeableConcept::of(ADJUDICATION_SYSTEM, code)
}

fn money(code: &str, value: i64) -> Benefit {
    Benefit {
        type_: adjudication(code),
        allowed_money: Some(Money::xof(value)),
        allowed_string: None,
    }
}

/// Reads the request into the `/v1` check: `patient`, `servicedDate`, and exactly one `item`
/// with its `category`, its care level (an extension `urn:passerelle:care-level` with a
/// `valueCode`) and, for an estimate, `unitPrice` × `quantity`.
fn translate(body: &Map<String, Value>, public_base: &str) -> Translation {
    let mut t = Translation::new("CoverageEligibilityRequest", body).on_base(public_base);
    t.patient(body.get("patient"), "patient");
    match body.get("servicedDate") {
        Some(d) if !d.is_null() => t.put("/service_date", d.clone(), "servicedDate"),
        _ => t.place("/service_date", "servicedDate"),
    }
    if body.get("servicedPeriod").is_some_and(|p| !p.is_null()) {
        t.error(
            "servicedPeriod",
            "not_supported",
            "a check is for one day: send servicedDate",
            "une vérification porte sur une seule journée : envoyez servicedDate",
        );
    }
    t.fixed(
        body,
        "status",
        "active",
        "only an active request is answered",
        "seule une demande de vérification active reçoit une réponse",
    );
    let purpose = body.get("purpose").filter(|p| !p.is_null());
    if purpose.is_some_and(|p| !p.is_array()) {
        t.error(
            "purpose",
            "invalid_type",
            "must be an array of codes",
            "doit être un tableau de codes",
        );
    }
    // FHIR JSON has no empty arrays, and R4 wants at least one purpose (1..*).
    if purpose.and_then(Value::as_array).is_some_and(Vec::is_empty) {
        t.error(
            "purpose",
            "empty",
            "must hold at least one code; leave it out for the default",
            "doit contenir au moins un code ; omettez-le pour la valeur par défaut",
        );
    }
    // The first identifier is given back in the answer's `request`: it must be one FHIR can
    // write (a list, without empty strings, not empty).
    if body.get("identifier").is_some_and(|i| !i.is_null() && !i.is_array()) {
        t.error(
            "identifier",
            "invalid_type",
            "must be a list of identifiers",
            "doit être une liste d'identifiants",
        );
    }
    if body
        .get("identifier")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        t.error(
            "identifier",
            "empty",
            "must hold at least one identifier; leave it out instead",
            "doit contenir au moins un identifiant ; omettez-le plutôt",
        );
    }
    if let Some(first) = body
        .get("identifier")
        .and_then(Value::as_array)
        .and_then(|ids| ids.first())
    {
        if !first.is_object() && !first.is_null() {
            t.error(
                "identifier[0]",
                "invalid_type",
                "must be an Identifier object",
                "doit être un objet Identifier",
            );
        }
        for part in ["system", "value"] {
            match first.get(part) {
                None | Some(Value::Null) => {}
                Some(Value::String(text)) if !text.trim().is_empty() => {}
                Some(Value::String(_)) => t.error(
                    &format!("identifier[0].{part}"),
                    "empty",
                    "must not be empty: leave it out instead",
                    "ne doit pas être vide : omettez-le plutôt",
                ),
                Some(_) => t.error(
                    &format!("identifier[0].{part}"),
                    "invalid_type",
                    "must be a string",
                    "doit être une chaîne de caractères",
                ),
            }
        }
    }
    for (i, p) in purpose.and_then(Value::as_array).into_iter().flatten().enumerate() {
        if !p.as_str().is_some_and(|p| PURPOSES.contains(&p)) {
            t.error(
                &format!("purpose[{i}]"),
                "unknown_value",
                format!("must be one of {}", PURPOSES.join(", ")),
                format!("doit être l'une des valeurs {}", PURPOSES.join(", ")),
            );
        }
    }
    // What the item gives, wherever a fault of the item itself stops the reading.
    for pointer in ["/care_level", "/category", "/amount_xof"] {
        t.place(pointer, "item");
    }
    let items = body.get("item").and_then(Value::as_array);
    let item = match items.map(Vec::as_slice) {
        Some([item]) => item,
        Some([_, _, ..]) => {
            t.error(
                "item[1]",
                "too_many_items",
                "a request checks one item; send one request per item",
                "une demande de vérification porte sur un seul item ; envoyez une demande par item",
            );
            return t;
        }
        // Given, but not a list: the same words as a Claim's.
        None if body.get("item").is_some_and(|i| !i.is_null()) => {
            t.error(
                "item",
                "invalid_type",
                "must be a list of items",
                "doit être une liste d'items",
            );
            return t;
        }
        _ => {
            t.required("item");
            return t;
        }
    };
    t.place("/care_level", "item[0].extension");
    // The value is named where it was found: `item[0].extension[<index>].valueCode`.
    let care_level = item
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .find(|(_, e)| e.get("url").and_then(Value::as_str) == Some(CARE_LEVEL_SYSTEM));
    match care_level.map(|(i, e)| (format!("item[0].extension[{i}].valueCode"), e.get("valueCode"))) {
        Some((at, Some(code))) => t.put("/care_level", code.clone(), &at),
        Some((at, None)) => t.required(&at),
        None => t.error(
            "item[0].extension",
            "required",
            format!("needs the extension {CARE_LEVEL_SYSTEM} with a valueCode"),
            format!("doit avoir l'extension {CARE_LEVEL_SYSTEM} avec un valueCode"),
        ),
    }
    if let Some(category) = item.get("category").filter(|c| !c.is_null()) {
        if let Some(code) = t.code(category, "item[0].category", CATEGORY_SYSTEM) {
            t.put("/category", json!(code), "item[0].category");
        }
    }
    // A quantity is checked whether or not a price comes with it: given and wrong is an error,
    // with the code `/v1` gives a claim's line (and a Claim's item): not a whole number is
    // `invalid_type`, a whole number outside 1 to MAX_QUANTITY `out_of_range`. It is a
    // SimpleQuantity: absent (or null) is one unit; anything but an object is refused, not read
    // as absent (which would estimate one unit).
    let quantity = match item.get("quantity").filter(|q| !q.is_null()) {
        None => Some(1),
        Some(q) if !q.is_object() => {
            t.error(
                "item[0].quantity",
                "invalid_type",
                "must be a Quantity: {\"value\": <number of units>}",
                "doit être une Quantity : {\"value\": <nombre d'unités>}",
            );
            None
        }
        Some(q) => match q.get("value").filter(|v| !v.is_null()).map(request::whole) {
            // A Quantity without its value says nothing of how many units: never one by default.
            None => {
                t.required("item[0].quantity.value");
                None
            }
            Some(Some(q)) if (1..=MAX_QUANTITY).contains(&q) => Some(q),
            Some(Some(_)) => {
                t.error(
                    "item[0].quantity.value",
                    "out_of_range",
                    format!("must be from 1 to {}", grouped_en(MAX_QUANTITY)),
                    format!("doit être de 1 à {}", grouped_fr(MAX_QUANTITY)),
                );
                None
            }
            Some(None) => {
                t.error(
                    "item[0].quantity.value",
                    "invalid_type",
                    "must be a whole number",
                    "doit être un nombre entier",
                );
                None
            }
        },
    };
    if let Some(price) = item.get("unitPrice").filter(|p| !p.is_null()) {
        let price = t.xof(price, "item[0].unitPrice");
        if let (Some(q), Some(p)) = (quantity, price.and_then(|p| p.as_i64())) {
            // Out of range is the `/v1` rule's to say; the product only has to be a number.
            let amount = p.checked_mul(q).unwrap_or(i64::MAX);
            t.put("/amount_xof", json!(amount), "item[0].unitPrice");
        }
    }
    t
}

fn response(
    answer: Answer,
    purpose: Vec<String>,
    request: Reference,
    today: String,
    (category, care_level): (Option<&str>, &str),
    operator: &str,
) -> CoverageEligibilityResponse {
    let view = answer.view;
    // The patient's share is said once: on the payer that pays last, or on the first coverage
    // when none pays (and the patient pays it all).
    let last_payer = answer
        .complementary
        .as_ref()
        .or(answer.base.as_ref())
        .or(view.coverages.first().map(|c| &c.coverage));
    let insurer = answer
        .complementary
        .as_ref()
        .or(answer.base.as_ref())
        .and_then(|id| view.coverages.iter().find(|c| &c.coverage == id))
        .or(view.coverages.first())
        .map_or(operator, |c| c.organization.as_str());
    let insurance = view
        .coverages
        .iter()
        .map(|c| {
            let mut benefit = Vec::new();
            // The rate is said whenever `/v1` gives one, as for a coverage in its waiting
            // period: `inforce` and the reasons say whether it pays today.
            if let Some(rate) = c.rate_bp {
                benefit.push(Benefit {
                    type_: adjudication("eligpercent"),
                    allowed_money: None,
                    allowed_string: Some(percent_text(rate)),
                });
            }
            if let Some(e) = &view.estimate {
                let share = if answer.base.as_deref() == Some(c.coverage.as_str()) {
                    e.base_xof
                } else if answer.complementary.as_deref() == Some(c.coverage.as_str()) {
                    e.complementary_xof
                } else {
                    0
                };
                benefit.push(money("submitted", e.billed_xof));
                benefit.push(money("benefit", share));
                if last_payer == Some(&c.coverage) {
                    benefit.push(money("copay", e.patient_xof));
                }
            }
            if let Some(left) = c.remaining_ceiling_xof {
                benefit.push(Benefit {
                    type_: CodeableConcept::of(BENEFIT_SYSTEM, "remaining-ceiling"),
                    allowed_money: Some(Money::xof(left)),
                    allowed_string: None,
                });
            }
            Insurance {
                coverage: Reference::to("Coverage", &c.coverage),
                inforce: !c.reasons.iter().any(|r| NOT_IN_FORCE.contains(&r.code.as_str())),
                extension: c
                    .reasons
                    .iter()
                    .map(|r| Extension::reason(&r.code, &r.message, r.until))
                    .collect(),
                item: vec![InsuranceItem {
                    category: category.map(|code| CodeableConcept::of(CATEGORY_SYSTEM, code)),
                    // R4 wants a category or a product: without a category, the item is care
                    // at its level.
                    product_or_service: category
                        .is_none()
                        .then(|| CodeableConcept::of(CARE_LEVEL_SYSTEM, care_level)),
                    excluded: c
                        .reasons
                        .iter()
                        .any(|r| r.code == "EXCLUDED_CATEGORY" || r.code == "NOT_COVERED"),
                    benefit,
                }],
            }
        })
        .collect();
    CoverageEligibilityResponse {
        resource_type: "CoverageEligibilityResponse",
        status: "active",
        purpose,
        patient: Reference::to("Patient", &view.beneficiary),
        serviced_date: view.service_date.to_string(),
        created: today,
        request,
        outcome: "complete",
        disposition: if view.eligible { "eligible" } else { "not eligible" },
        insurer: Reference::organization(insurer),
        insurance,
    }
}

/// Check a person's coverage for one item, as FHIR.
///
/// The check of `POST /v1/eligibility-checks`, with the same rules, visibility (404) and
/// audit. The person is `patient`: `Patient/<id>` (or this server's absolute
/// `<base>/fhir/r4/Patient/<id>`), or an identifier in
/// `urn:passerelle:national-id:<country>:<type>` or `urn:passerelle:member-number:<organisation>`.
/// Exactly one `item`: its care level is the extension `urn:passerelle:care-level`
/// (`valueCode`), its category a coding in `urn:passerelle:category`, and `unitPrice` (XOF) ×
/// `quantity.value` (`quantity` absent: 1; not an object: 422 `invalid_type`; an object without
/// `value`: 422 `required` on `item[0].quantity.value`) the amount to estimate. Errors
/// are OperationOutcome, each issue's `expression` naming the element.
#[utoipa::path(
    post,
    path = "/fhir/r4/CoverageEligibilityRequest",
    operation_id = "fhir_check_eligibility",
    tag = "fhir",
    request_body(content = Object, content_type = "application/fhir+json",
        description = "A CoverageEligibilityRequest",
        example = json!({"resourceType": "CoverageEligibilityRequest", "status": "active", "purpose": ["validation", "benefits"],
            "patient": {"identifier": {"system": "urn:passerelle:member-number:mut-tsevie", "value": "TSV-0042"}},
            "servicedDate": "2026-11-30", "created": "2026-11-30",
            "insurer": {"identifier": {"system": "urn:passerelle:organization", "value": "mut-tsevie"}},
            "item": [{"extension": [{"url": "urn:passerelle:care-level", "valueCode": "health_center"}],
                      "category": {"coding": [{"system": "urn:passerelle:category", "code": "consultation"}]},
                      "unitPrice": {"value": 10000, "currency": "XOF"}}]})),
    responses(
        (status = 200, description = "The answer for each coverage the caller may see (every one for a provider)", body = CoverageEligibilityResponse, content_type = "application/fhir+json"),
        (status = 404, description = "Unknown person, or one you may not see", body = super::outcome::OperationOutcome, content_type = "application/fhir+json"),
        (status = 422, description = "A rule broken, each issue at its element; nothing was checked", body = super::outcome::OperationOutcome, content_type = "application/fhir+json"),
    ),
    security(("bearer" = ["eligibility:check"]))
)]
pub async fn check(
    State(state): State<AppState>,
    auth: Authorized<perm::CheckEligibility>,
    headers: axum::http::HeaderMap,
    FhirResource(body): FhirResource,
) -> Result<Fhir<CoverageEligibilityResponse>, ApiError> {
    let t = translate(&body, &super::public_base(state.config.public_url.as_deref(), &headers));
    let today = state.clock.today();
    let check = t.judge(match read_check(&t.body, today, &state.national_ids) {
        Err(ApiError::Validation(errors)) => Err(errors),
        other => Ok(other?),
    })?;
    let purpose = match body.get("purpose").and_then(Value::as_array) {
        // Each one checked by `translate`.
        Some(p) if !p.is_empty() => p.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
        _ if check.amount.is_some() => vec!["validation".to_owned(), "benefits".to_owned()],
        _ => vec!["validation".to_owned()],
    };
    let request = body
        .get("identifier")
        .and_then(Value::as_array)
        .and_then(|ids| ids.first())
        .and_then(|id| Some((id.get("system")?.as_str()?, id.get("value")?.as_str()?)))
        .map_or(
            Reference {
                type_: Some("CoverageEligibilityRequest".into()),
                display: Some("CoverageEligibilityRequest".into()),
                ..Reference::default()
            },
            |(system, value)| Reference {
                type_: Some("CoverageEligibilityRequest".into()),
                identifier: Some(super::model::Identifier {
                    system: system.to_owned(),
                    value: value.to_owned(),
                }),
                ..Reference::default()
            },
        );
    let asked = (check.category.map(|c| c.as_str()), check.care_level.as_str());
    let answer = answer(&state, &auth.caller, &check).await?;
    Ok(Fhir(response(
        answer,
        purpose,
        request,
        today.to_string(),
        asked,
        state.config.operator_org.as_str(),
    )))
}
