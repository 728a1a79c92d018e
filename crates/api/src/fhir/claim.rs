//! `POST /fhir/r4/Claim` → `ClaimResponse`: the submission of `POST /v1/claims`, read from and
//! written as FHIR.

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use passerelle_domain::claim::{Claim, ClaimStatus};
use passerelle_domain::error::FieldError;
use passerelle_domain::product::CareLevel;
use serde::Serialize;
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::model::{
    percent, CodeableConcept, Extension, Identifier, Meta, Money, Reference, ADJUDICATION_SYSTEM, CARE_LEVEL_SYSTEM,
    CATEGORY_SYSTEM, CLAIM_ID_PREFIX, ICD10_SYSTEM, ORGANIZATION_SYSTEM,
};
use super::request::{self, Translation};
use super::{Fhir, FhirBody};
use crate::extract::{perm, Authorized};
use crate::problem::ApiError;
use crate::routes::claims::{check, read_claim, submit, EXTERNAL_ID_TAKEN, MAX_DIAGNOSES, MAX_LINES};
use crate::state::AppState;

/// The payer of a share: `urn:passerelle:payer`, a reference to the organisation.
pub const PAYER_URL: &str = "urn:passerelle:payer";

/// One amount, rate or decision of a line.
#[derive(Debug, Serialize, ToSchema)]
pub struct Adjudication {
    /// `submitted` (billed), `eligible` (a payer's proposed share, not yet adjudicated by it),
    /// `benefit` (what the payer pays, once it adjudicated), `eligpercent` (its rate, in
    /// percent) or `copay` (the patient's share).
    pub category: CodeableConcept,
    /// The mutuelle's reason for a `reject` or `reduce`, in `urn:passerelle:adjudication-reason`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason: Option<CodeableConcept>,
    /// The amount, for every category but `eligpercent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub amount: Option<Money>,
    /// The rate in percent, for `eligpercent`: `80`, `75.5`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false, value_type = Option<f64>)]
    pub value: Option<Value>,
    /// `urn:passerelle:payer` on the shares and rates of a payer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
}

/// The adjudication of one line of the claim.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResponseItem {
    /// The line's `sequence`: from 1, in request order.
    pub item_sequence: u32,
    /// `submitted`; each payer's share and rate; `copay`.
    pub adjudication: Vec<Adjudication>,
}

/// A total over the lines.
#[derive(Debug, Serialize, ToSchema)]
pub struct Total {
    /// `submitted`, both payers' shares (`eligible` until the claim is adjudicated, or
    /// rejected by the mutuelle it was routed to; `benefit` after) or `copay`.
    pub category: CodeableConcept,
    /// The sum over the lines.
    pub amount: Money,
}

/// The answer to a Claim: the claim as priced by coordination of benefits.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"resourceType": "ClaimResponse", "id": "01937f0f-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
    "meta": {"versionId": "1"}, "extension": [{"url": "urn:passerelle:claim-status", "valueCode": "awaiting_base"}],
    "identifier": [{"system": "urn:passerelle:claim-id:cms-tsevie", "value": "CMS-2026-000123"}],
    "status": "active", "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
    "use": "claim", "patient": {"reference": "Patient/01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f"}, "created": "2026-11-28T09:30:00Z",
    "insurer": {"type": "Organization", "identifier": {"system": "urn:passerelle:organization", "value": "mut-tsevie"}},
    "requestor": {"type": "Organization", "identifier": {"system": "urn:passerelle:organization", "value": "cms-tsevie"}},
    "request": {"type": "Claim", "identifier": {"system": "urn:passerelle:claim-id:cms-tsevie", "value": "CMS-2026-000123"}},
    "outcome": "queued", "disposition": "awaiting_base",
    "item": [{"itemSequence": 1, "adjudication": [
        {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted"}]}, "amount": {"value": 10001, "currency": "XOF"}},
        {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "eligible"}]}, "amount": {"value": 8000, "currency": "XOF"},
         "extension": [{"url": "urn:passerelle:payer", "valueReference": {"type": "Organization", "identifier": {"system": "urn:passerelle:organization", "value": "tg-inam"}}}]},
        {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "eligpercent"}]}, "value": 80,
         "extension": [{"url": "urn:passerelle:payer", "valueReference": {"type": "Organization", "identifier": {"system": "urn:passerelle:organization", "value": "tg-inam"}}}]},
        {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "eligible"}]}, "amount": {"value": 2001, "currency": "XOF"},
         "extension": [{"url": "urn:passerelle:payer", "valueReference": {"type": "Organization", "identifier": {"system": "urn:passerelle:organization", "value": "mut-tsevie"}}}]},
        {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "eligpercent"}]}, "value": 100,
         "extension": [{"url": "urn:passerelle:payer", "valueReference": {"type": "Organization", "identifier": {"system": "urn:passerelle:organization", "value": "mut-tsevie"}}}]},
        {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "copay"}]}, "amount": {"value": 0, "currency": "XOF"}}]}],
    "total": [
        {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted"}]}, "amount": {"value": 10001, "currency": "XOF"}},
        {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "eligible"}]}, "amount": {"value": 10001, "currency": "XOF"}},
        {"category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "copay"}]}, "amount": {"value": 0, "currency": "XOF"}}]}))]
pub struct ClaimResponse {
    /// `ClaimResponse`.
    pub resource_type: &'static str,
    /// The claim id (`GET /v1/claims/{id}`).
    pub id: String,
    /// The claim's `version` (`GET /v1/claims/{id}`).
    pub meta: Meta,
    /// `urn:passerelle:claim-status` (the `/v1` status); for a claim rejected at submission,
    /// each eligibility reason as `urn:passerelle:reason` (parts `code` and `until`).
    pub extension: Vec<Extension>,
    /// The provider's `external_id`, in `urn:passerelle:claim-id:<provider>`.
    pub identifier: Vec<Identifier>,
    /// `active`, or `cancelled`.
    pub status: &'static str,
    /// `institutional` at a hospital, else `professional`.
    #[serde(rename = "type")]
    pub type_: CodeableConcept,
    /// `claim`.
    #[serde(rename = "use")]
    pub use_: &'static str,
    /// `Patient/<beneficiary id>`.
    pub patient: Reference,
    /// When the claim was submitted.
    pub created: String,
    /// The mutuelle it is routed to, else its base payer, else the service's operator
    /// organisation (`PASSERELLE_OPERATOR_ORG`, by default `operator`).
    pub insurer: Reference,
    /// The health facility.
    pub requestor: Reference,
    /// The claim, by its identifier.
    pub request: Reference,
    /// `queued` while a payer has still to adjudicate, else `complete`.
    pub outcome: &'static str,
    /// The `/v1` status: `awaiting_base`, `awaiting_complementary`, `adjudicated`, `settled`,
    /// `rejected` or `cancelled`.
    pub disposition: String,
    /// Each line, in request order.
    pub item: Vec<ResponseItem>,
    /// `submitted`, the payers' shares and `copay`, summed over the lines.
    pub total: Vec<Total>,
}

fn category(code: &str) -> CodeableConcept {
    CodeableConcept::of(ADJUDICATION_SYSTEM, code)
}

fn payer(org: &str) -> Vec<Extension> {
    vec![Extension::reference(PAYER_URL, Reference::organization(org))]
}

fn amount(code: &str, value: i64, extension: Vec<Extension>) -> Adjudication {
    Adjudication {
        category: category(code),
        reason: None,
        amount: Some(Money::xof(value)),
        value: None,
        extension,
    }
}

impl ClaimResponse {
    /// The claim as it stands; `operator` (`PASSERELLE_OPERATOR_ORG`) is the `insurer` of a
    /// claim no payer took.
    pub fn new(c: Claim, operator: &str) -> ClaimResponse {
        let lang = crate::problem::current_lang();
        // Each payer has decided a line when the line carries its decision: the base scheme's
        // amount, the mutuelle's accept, reduce or reject. A claim cancelled before that keeps
        // its proposed shares, which nobody will pay. The claim's payers have all decided once
        // it is adjudicated, or rejected by the mutuelle it was routed to (a claim rejected at
        // submission has no payer).
        let payers_decided = match c.status {
            ClaimStatus::Adjudicated | ClaimStatus::Settled => true,
            ClaimStatus::Rejected => c.routed_to.is_some(),
            _ => false,
        };
        let decided = |done: bool| if done { "benefit" } else { "eligible" };
        let item = c
            .lines
            .iter()
            .map(|l| {
                let mut adjudication = vec![amount("submitted", l.shares.billed_xof.value(), Vec::new())];
                let payers = [
                    (
                        c.base_payer.as_deref(),
                        l.shares.base_xof.value(),
                        l.base_rate,
                        l.base_adjudicated.is_some(),
                        None,
                    ),
                    (
                        c.routed_to.as_deref(),
                        l.shares.complementary_xof.value(),
                        l.complementary_rate,
                        l.decision.is_some(),
                        l.reason_code,
                    ),
                ];
                for (org, share, rate, done, reason) in payers {
                    let Some(org) = org else { continue };
                    let mut share = amount(decided(done), share, payer(org));
                    share.reason =
                        reason.map(|r| CodeableConcept::of("urn:passerelle:adjudication-reason", r.as_str()));
                    adjudication.push(share);
                    if let Some(rate) = rate {
                        adjudication.push(Adjudication {
                            category: category("eligpercent"),
                            reason: None,
                            amount: None,
                            value: Some(percent(rate.value())),
                            extension: payer(org),
                        });
                    }
                }
                adjudication.push(amount("copay", l.shares.patient_xof.value(), Vec::new()));
                ResponseItem {
                    item_sequence: l.line,
                    adjudication,
                }
            })
            .collect();
        let mut extension = vec![Extension::code("urn:passerelle:claim-status", c.status.as_str())];
        extension.extend(c.reasons.iter().map(|r| {
            Extension::reason(
                r.code.as_str(),
                lang.pick(r.code.message_en(), r.code.message_fr()),
                r.until,
            )
        }));
        let identifier = Identifier {
            system: format!("{CLAIM_ID_PREFIX}{}", c.provider),
            value: c.external_id.clone(),
        };
        let t = &c.totals;
        ClaimResponse {
            resource_type: "ClaimResponse",
            meta: Meta::of(c.version),
            extension,
            identifier: vec![identifier.clone()],
            status: if c.status == ClaimStatus::Cancelled {
                "cancelled"
            } else {
                "active"
            },
            type_: CodeableConcept::of(
                "http://terminology.hl7.org/CodeSystem/claim-type",
                match c.care_level {
                    CareLevel::Hospital | CareLevel::UniversityHospital => "institutional",
                    _ => "professional",
                },
            ),
            use_: "claim",
            patient: Reference::to("Patient", &c.beneficiary),
            created: c.created_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            insurer: Reference::organization(c.routed_to.as_deref().or(c.base_payer.as_deref()).unwrap_or(operator)),
            requestor: Reference::organization(&c.provider),
            request: Reference {
                type_: Some("Claim".into()),
                identifier: Some(identifier),
                ..Reference::default()
            },
            outcome: if matches!(c.status, ClaimStatus::AwaitingBase | ClaimStatus::AwaitingComplementary) {
                "queued"
            } else {
                "complete"
            },
            disposition: c.status.as_str().to_owned(),
            item,
            total: vec![
                Total {
                    category: category("submitted"),
                    amount: Money::xof(t.billed_xof.value()),
                },
                Total {
                    category: category(decided(payers_decided)),
                    amount: Money::xof(t.base_xof.value() + t.complementary_xof.value()),
                },
                Total {
                    category: category("copay"),
                    amount: Money::xof(t.patient_xof.value()),
                },
            ],
            id: c.id,
        }
    }
}

/// The organisation a Reference names: `Organization/<id>`, or an identifier in
/// `urn:passerelle:organization`.
fn organization(t: &mut Translation, value: Option<&Value>, element: &str) {
    t.place("/provider", element);
    let Some(reference) = value.filter(|v| !v.is_null()) else {
        return t.required(element);
    };
    // A Reference may carry both; an identifier in another system (a national registry's) says
    // nothing here, one in ours beside a reference could disagree with it.
    let ours = reference
        .get("identifier")
        .and_then(|i| i.get("system"))
        .and_then(Value::as_str)
        == Some(ORGANIZATION_SYSTEM);
    if reference.get("reference").is_some_and(|r| !r.is_null()) && ours {
        return t.error(
            element,
            "ambiguous_reference",
            "give either reference or identifier, not both",
            "indiquez reference ou identifier, pas les deux",
        );
    }
    let by_id = reference
        .get("reference")
        .and_then(Value::as_str)
        .and_then(|r| t.local(r).strip_prefix("Organization/"));
    let by_identifier = reference.get("identifier").and_then(|i| {
        (i.get("system").and_then(Value::as_str) == Some(ORGANIZATION_SYSTEM))
            .then(|| i.get("value").and_then(Value::as_str))
            .flatten()
    });
    match by_id.or(by_identifier) {
        Some(org) => t.put("/provider", json!(org), element),
        None => {
            let (en, fr) = (
                t.reference_form("Organization/<id>", "or"),
                t.reference_form("Organization/<id>", "ou"),
            );
            t.error(
                element,
                "invalid_reference",
                format!("must be {en}, or an identifier in {ORGANIZATION_SYSTEM}"),
                format!("doit être {fr}, ou un identifier de {ORGANIZATION_SYSTEM}"),
            )
        }
    }
}

/// What an item says of a value all items share: nothing, a fault already reported, or the
/// value and the element it was read from (relative to the resource).
enum Said {
    Nothing,
    Reported,
    Value(String, String),
}

/// One value every item must share (the day of care, the care level): the first item's, an
/// error at each item that differs.
fn shared(t: &mut Translation, values: Vec<(usize, Said)>, element: &str, pointer: &str) {
    // Where no item gave it, the fault is the items'.
    t.place(pointer, "item");
    let mut first: Option<String> = None;
    for (i, said) in values {
        match said {
            Said::Nothing => t.required(&format!("item[{i}].{element}")),
            Said::Reported => {}
            Said::Value(v, at) => match &first {
                None => {
                    t.put(pointer, json!(v), &at);
                    first = Some(v);
                }
                // As `/v1` reads each: trimmed (` 2026-06-01` is `2026-06-01`).
                Some(f) if v.trim() != f.trim() => t.error(
                    &at,
                    "inconsistent_items",
                    format!("must be the same for every item ({f} in item[0])"),
                    format!("doit être le même pour chaque item ({f} dans item[0])"),
                ),
                Some(_) => {}
            },
        }
    }
}

/// The claim's `billablePeriod.start`, read once (a dateTime, whose date part is taken):
/// `None` when not given, `Some(None)` when it is no date (reported here, once).
fn billable_day(t: &mut Translation, body: &Map<String, Value>) -> Option<Option<String>> {
    let period = body.get("billablePeriod").filter(|p| !p.is_null())?;
    let Some(period) = period.as_object() else {
        t.error(
            "billablePeriod",
            "invalid_type",
            "must be a Period",
            "doit être une Period",
        );
        return Some(None);
    };
    let start = period.get("start").filter(|d| !d.is_null())?;
    match start.as_str() {
        Some(text) if day_part(text).is_some() => Some(day_part(text).map(str::to_owned)),
        _ => {
            t.error(
                "billablePeriod.start",
                "invalid_type",
                "must be a date",
                "doit être une date",
            );
            Some(None)
        }
    }
}

/// The day of a FHIR date or dateTime: `2026-12-04`, or one with a time, which must be a valid
/// RFC 3339 instant (`2026-12-04T25:99:00Z` is no time); `None` otherwise.
fn day_part(text: &str) -> Option<&str> {
    match text.split_once('T') {
        None => Some(text),
        Some((day, _)) => chrono::DateTime::parse_from_rfc3339(text).is_ok().then_some(day),
    }
}

/// Whether a period is care on one day: its start's day as written, which its end, read at the
/// start's offset, does not leave and does not come before (two times written at different
/// offsets are compared as instants, not as text).
fn one_day(start: &str, end: &str) -> bool {
    let (Some(start_day), Some(end_day)) = (day_part(start), day_part(end)) else {
        return false;
    };
    match (
        chrono::DateTime::parse_from_rfc3339(start),
        chrono::DateTime::parse_from_rfc3339(end),
    ) {
        (Ok(from), Ok(to)) => to >= from && to.with_timezone(from.offset()).date_naive() == from.date_naive(),
        _ => start_day == end_day,
    }
}

/// The day of care an item is on: its `servicedDate`, or a `servicedPeriod` that starts and ends
/// on one day, else the claim's `billablePeriod.start` (`billable`, read by [`billable_day`]).
fn day_of(t: &mut Translation, billable: &Option<Option<String>>, item: &Value, i: usize) -> Said {
    // A period is one day of care only when it starts and ends on the same day.
    if let Some(period) = item.get("servicedPeriod").filter(|p| !p.is_null()) {
        let edge = |edge: &str| period.get(edge).and_then(Value::as_str);
        return match (edge("start"), edge("end")) {
            (Some(start), Some(end)) if item.get("servicedDate").is_none_or(Value::is_null) && one_day(start, end) => {
                Said::Value(
                    day_part(start).unwrap_or(start).to_owned(),
                    format!("item[{i}].servicedPeriod"),
                )
            }
            _ => {
                t.error(
                    &format!("item[{i}].servicedPeriod"),
                    "not_supported",
                    "a line is care on one day: send servicedDate, or a period that starts and ends that day",
                    "une ligne correspond à des soins d'une seule journée : envoyez servicedDate, ou une période qui commence et finit ce jour-là",
                );
                Said::Reported
            }
        };
    }
    let Some(value) = item.get("servicedDate").filter(|d| !d.is_null()) else {
        return match billable {
            None => Said::Nothing,
            Some(None) => Said::Reported,
            Some(Some(day)) => Said::Value(day.clone(), "billablePeriod.start".to_owned()),
        };
    };
    let at = format!("item[{i}].servicedDate");
    match value.as_str() {
        Some(text) => match day_part(text) {
            Some(day) => Said::Value(day.to_owned(), at),
            None => {
                t.error(
                    &at,
                    "invalid_date",
                    "must be a date, YYYY-MM-DD",
                    "doit être une date, AAAA-MM-JJ",
                );
                Said::Reported
            }
        },
        None => {
            t.error(&at, "invalid_type", "must be a date", "doit être une date");
            Said::Reported
        }
    }
}

/// Reads one item into a `/v1` line, its elements placed for the `/v1` rules' errors.
fn line(t: &mut Translation, item: &Value, i: usize) -> Value {
    let at = |e: &str| format!("item[{i}].{e}");
    if let Some(sequence) = item.get("sequence").filter(|s| !s.is_null()) {
        // A whole number however it is written (`1`, `1.0`), as every number of the API.
        let number = sequence.as_number().and_then(crate::fields::whole_number);
        if number.is_none() {
            t.error(
                &at("sequence"),
                "invalid_type",
                "must be a whole number",
                "doit être un nombre entier",
            );
        } else if number != i64::try_from(i + 1).ok() {
            t.error(
                &at("sequence"),
                "out_of_order",
                format!("must be {}: items are numbered from 1 in order", i + 1),
                format!(
                    "doit être {} : les items sont numérotés à partir de 1 dans l'ordre",
                    i + 1
                ),
            );
        }
    }
    let mut line = Map::new();
    let product = item.get("productOrService").cloned().unwrap_or(Value::Null);
    let coding = product.get("coding").and_then(Value::as_array).and_then(|c| c.first());
    match coding.and_then(|c| c.get("code")) {
        Some(code) => {
            line.insert("code".into(), code.clone());
        }
        None => t.required(&at("productOrService.coding[0].code")),
    }
    let (text, text_at) = match product.get("text").filter(|d| !d.is_null()) {
        Some(text) => (Some(text), "productOrService.text"),
        None => (
            coding.and_then(|c| c.get("display")).filter(|d| !d.is_null()),
            "productOrService.coding[0].display",
        ),
    };
    if let Some(text) = text {
        line.insert("description".into(), text.clone());
    }
    match item.get("category").filter(|c| !c.is_null()) {
        Some(concept) => {
            if let Some(code) = t.code(concept, &at("category"), CATEGORY_SYSTEM) {
                line.insert("category".into(), json!(code));
            }
        }
        None => t.required(&at("category")),
    }
    // A SimpleQuantity: absent (or null) is one unit; given as anything but an object (a bare
    // `3`) it is refused, not read as absent, which would bill one unit.
    let quantity = match item.get("quantity").filter(|q| !q.is_null()) {
        None => Some(1),
        Some(q) if !q.is_object() => {
            t.error(
                &at("quantity"),
                "invalid_type",
                "must be a Quantity: {\"value\": <number of units>}",
                "doit être une Quantity : {\"value\": <nombre d'unités>}",
            );
            None
        }
        Some(q) => match q.get("value").filter(|v| !v.is_null()) {
            // A Quantity without its value says nothing of how many units: never one by default.
            None => {
                t.required(&format!("{}.value", at("quantity")));
                None
            }
            // A whole number written as a FHIR decimal (`2.0`) is that number; anything else
            // is the `/v1` rule's to refuse.
            Some(q) => request::whole(q).or_else(|| {
                line.insert("quantity".into(), q.clone());
                None
            }),
        },
    };
    if let Some(q) = quantity {
        line.insert("quantity".into(), json!(q));
    }
    let price = match item.get("unitPrice").filter(|p| !p.is_null()) {
        Some(price) => t.xof(price, &at("unitPrice")),
        None => {
            t.required(&at("unitPrice"));
            None
        }
    };
    // FHIR bills `net = quantity × unitPrice × factor`; the service bills quantity × price, so
    // a factor other than 1, or a net that says another amount, would bill what was not meant.
    if let Some(factor) = item.get("factor").filter(|f| !f.is_null()) {
        if factor.as_f64() != Some(1.0) {
            t.error(
                &at("factor"),
                "not_supported",
                "must be 1: put the discounted amount in unitPrice",
                "doit être 1 : indiquez le montant remisé dans unitPrice",
            );
        }
    }
    let net = item.get("net").filter(|n| !n.is_null()).map(|n| t.xof(n, &at("net")));
    if let (Some(Some(net)), Some(q), Some(p)) = (net, quantity, price.as_ref().and_then(Value::as_i64)) {
        if net.as_i64() != q.checked_mul(p) {
            t.error(
                &at("net"),
                "inconsistent_amount",
                "must be quantity × unitPrice",
                "doit valoir quantity × unitPrice",
            );
        }
    }
    if let Some(price) = price {
        line.insert("unit_price_xof".into(), price);
    }
    for (field, element) in [
        ("code", "productOrService.coding[0].code"),
        ("description", text_at),
        ("category", "category"),
        ("quantity", "quantity.value"),
        ("unit_price_xof", "unitPrice"),
    ] {
        t.place(&format!("/lines/{i}/{field}"), &at(element));
    }
    t.place(&format!("/lines/{i}"), &format!("item[{i}]"));
    Value::Object(line)
}

/// Reads a Claim into the `/v1` claim: `identifier[0].value` is the `external_id`, `provider`
/// the facility, `patient` the person, `diagnosis` the ICD-10 codes, and each `item` a line
/// (`productOrService` its code and text, `category`, `quantity`, `unitPrice`), all items on
/// one day at one care level (`locationCodeableConcept`); `use`, `status`, each item's `factor`
/// and `net`, and `total` must agree with a claim to pay at that price.
fn translate(body: &Map<String, Value>, public_base: &str) -> Translation {
    let mut t = Translation::new("Claim", body).on_base(public_base);
    // Where a fault stops the reading of an element, the `/v1` field it feeds is placed there.
    t.place("/external_id", "identifier[0].value");
    for pointer in ["/lines", "/service_date", "/care_level"] {
        t.place(pointer, "item");
    }
    t.fixed(
        body,
        "use",
        "claim",
        "a predetermination or preauthorization is not a claim to pay",
        "une prédétermination ou une autorisation préalable n'est pas une demande à payer",
    );
    t.fixed(
        body,
        "status",
        "active",
        "only an active claim is submitted",
        "seule une demande au statut active peut être soumise",
    );
    match body
        .get("identifier")
        .and_then(Value::as_array)
        .and_then(|ids| ids.first())
        .and_then(|id| id.get("value"))
    {
        Some(value) => t.put("/external_id", value.clone(), "identifier[0].value"),
        None => t.required("identifier[0].value"),
    }
    organization(&mut t, body.get("provider"), "provider");
    t.patient(body.get("patient"), "patient");
    let mut diagnoses = Vec::new();
    let listed = match body.get("diagnosis").filter(|d| !d.is_null()) {
        Some(Value::Array(all)) => Some(all),
        Some(_) => {
            t.error(
                "diagnosis",
                "invalid_type",
                "must be a list of diagnoses",
                "doit être une liste de diagnostics",
            );
            None
        }
        None => None,
    };
    // Past the `/v1` limit, as for items: the limit, not each diagnosis's faults.
    let listed = match listed {
        Some(all) if all.len() > MAX_DIAGNOSES => {
            t.error(
                "diagnosis",
                "invalid_length",
                format!("must hold at most {MAX_DIAGNOSES} diagnoses"),
                format!("doit contenir au plus {MAX_DIAGNOSES} diagnostics"),
            );
            None
        }
        other => other,
    };
    for (i, d) in listed.into_iter().flatten().enumerate() {
        if !d.is_object() {
            t.error(
                &format!("diagnosis[{i}]"),
                "invalid_type",
                "must be an object",
                "doit être un objet",
            );
            continue;
        }
        let at = format!("diagnosis[{i}].diagnosisCodeableConcept");
        let concept = d.get("diagnosisCodeableConcept").cloned().unwrap_or(Value::Null);
        if let Some(code) = t.code(&concept, &at, ICD10_SYSTEM) {
            // The `/v1` list holds only the codes read, so its indices are its own.
            t.place(&format!("/diagnoses/{}", diagnoses.len()), &at);
            diagnoses.push(Value::String(code));
        }
    }
    if !diagnoses.is_empty() {
        t.put("/diagnoses", Value::Array(diagnoses), "diagnosis");
    }
    let Some(items) = body.get("item").and_then(Value::as_array).filter(|i| !i.is_empty()) else {
        match body.get("item").filter(|i| !i.is_null() && !i.is_array()) {
            Some(_) => t.error(
                "item",
                "invalid_type",
                "must be a list of items",
                "doit être une liste d'items",
            ),
            None => t.required("item"),
        }
        return t;
    };
    // Past the `/v1` limit, no item is read: the client is told the limit, not each item's
    // faults.
    if items.len() > MAX_LINES {
        t.error(
            "item",
            "invalid_length",
            format!("must hold 1 to {MAX_LINES} items"),
            format!("doit contenir de 1 à {MAX_LINES} items"),
        );
        return t;
    }
    let billable = billable_day(&mut t, body);
    let mut lines = Vec::new();
    let mut days = Vec::new();
    let mut levels = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if !item.is_object() {
            // One fault for the item; the `/v1` rule's on the same line is the same fault.
            t.error(
                &format!("item[{i}]"),
                "invalid_type",
                "must be an object",
                "doit être un objet",
            );
            t.place(&format!("/lines/{i}"), &format!("item[{i}]"));
            lines.push(item.clone());
            days.push((i, Said::Reported));
            levels.push((i, Said::Reported));
            continue;
        }
        lines.push(line(&mut t, item, i));
        days.push((i, day_of(&mut t, &billable, item, i)));
        let level = match item.get("locationCodeableConcept").filter(|c| !c.is_null()) {
            None => Said::Nothing,
            Some(c) => {
                let at = format!("item[{i}].locationCodeableConcept");
                match t.code(c, &at, CARE_LEVEL_SYSTEM) {
                    Some(code) => Said::Value(code, at),
                    None => Said::Reported,
                }
            }
        };
        levels.push((i, level));
    }
    // As for an item's net: a total that is not the sum of the items would pay another amount.
    if let Some(total) = body.get("total").filter(|v| !v.is_null()) {
        let billed = lines.iter().try_fold(0i64, |sum, line| {
            let q = line.get("quantity").and_then(Value::as_i64)?;
            let p = line.get("unit_price_xof").and_then(Value::as_i64)?;
            sum.checked_add(q.checked_mul(p)?)
        });
        if let (Some(total), Some(billed)) = (t.xof(total, "total"), billed) {
            if total.as_i64() != Some(billed) {
                t.error(
                    "total",
                    "inconsistent_amount",
                    format!("must be the sum of the items ({billed} XOF)"),
                    format!("doit être la somme des items ({billed} XOF)"),
                );
            }
        }
    }
    t.put("/lines", Value::Array(lines), "item");
    shared(&mut t, days, "servicedDate", "/service_date");
    shared(&mut t, levels, "locationCodeableConcept", "/care_level");
    // No day when the items' is billablePeriod's, which is no date: that is the one fault.
    if billable == Some(None) && !t.body.contains_key("service_date") {
        t.place("/service_date", "billablePeriod.start");
    }
    t
}

/// The 409 of a Claim whose identifier its provider already used (the store's
/// `external_id_taken`), named as the Claim names it.
pub fn duplicate_identifier() -> ApiError {
    let (en, fr) = (
        "A claim of this provider already has this identifier, whatever its status: a claim is not paid twice; a correction is sent under a new identifier.",
        "Une demande de remboursement de ce prestataire porte déjà cet identifiant, quel que soit son statut : une demande n'est pas payée deux fois ; envoyez toute correction sous un nouvel identifiant.",
    );
    ApiError::Conflict {
        en: en.into(),
        fr: fr.into(),
        errors: vec![FieldError::new(
            "Claim.identifier[0].value",
            EXTERNAL_ID_TAKEN,
            "a claim of this provider already has this identifier",
            "une demande de ce prestataire porte déjà cet identifiant",
        )],
    }
}

/// Whether `error` is the refusal of a provider's `external_id` used twice.
fn is_duplicate_identifier(error: &ApiError) -> bool {
    matches!(error, ApiError::Conflict { errors, .. }
        if errors.first().is_some_and(|e| e.code == EXTERNAL_ID_TAKEN))
}

/// Submit a claim, as FHIR.
///
/// The submission of `POST /v1/claims`, with the same rules, pricing, routing, visibility and
/// audit; `Idempotency-Key` is required (428) and a replay gives back the first answer. The
/// person is `patient` as in a CoverageEligibilityRequest; `provider` is
/// `Organization/<id>` (relative, or absolute on this server) or an identifier in
/// `urn:passerelle:organization`; `identifier[0].value` is the provider's own reference (`external_id`, unique per provider:
/// 409, an issue `duplicate` whose code is `external_id_taken`, at `Claim.identifier[0].value`); `diagnosis` holds at most 100 ICD-10 codes.
/// Each `item` (1 to 1000) is a line:
/// `productOrService.coding[0].code` (and `text`), `category` in `urn:passerelle:category`,
/// `quantity` a Quantity whose `value` is the number of units (`quantity` absent: 1; not an
/// object: 422 `invalid_type`; an object without `value`: 422 `required` on `quantity.value`),
/// `unitPrice` in XOF (`factor`, when given, 1; `net`
/// quantity × unitPrice; the claim's `total` their sum; `use` `claim`; `status` `active`); every
/// item has the same day (`servicedDate`, a one-day `servicedPeriod`, or the claim's
/// `billablePeriod.start`) and care level (`locationCodeableConcept` in
/// `urn:passerelle:care-level`). A 422 lists at most 100 faults, then one (`too_many_errors`)
/// saying how many more. A scheme's own base adjudication is sent with `/v1` only.
#[utoipa::path(
    post,
    path = "/fhir/r4/Claim",
    operation_id = "fhir_submit_claim",
    tag = "fhir",
    request_body(content = Object, content_type = "application/fhir+json",
        description = "A Claim",
        example = json!({"resourceType": "Claim", "status": "active",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
            "use": "claim", "created": "2026-11-28",
            "identifier": [{"system": "urn:passerelle:claim-id:cms-tsevie", "value": "CMS-2026-000123"}],
            "patient": {"reference": "Patient/01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f"},
            "provider": {"reference": "Organization/cms-tsevie"},
            "priority": {"coding": [{"code": "normal"}]},
            "insurance": [{"sequence": 1, "focal": true, "coverage": {"reference": "Coverage/01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70"}}],
            "diagnosis": [{"sequence": 1, "diagnosisCodeableConcept": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "B54"}]}}],
            "item": [{"sequence": 1, "servicedDate": "2026-11-28",
                      "productOrService": {"coding": [{"code": "CONS-GEN"}], "text": "Consultation générale"},
                      "category": {"coding": [{"system": "urn:passerelle:category", "code": "consultation"}]},
                      "locationCodeableConcept": {"coding": [{"system": "urn:passerelle:care-level", "code": "health_center"}]},
                      "quantity": {"value": 1}, "unitPrice": {"value": 10001, "currency": "XOF"}}]})),
    params(("Idempotency-Key" = String, Header, description = "Required: the same key and body replay the first response")),
    responses(
        (status = 201, description = "Accepted and priced; with no eligible payer the claim is `rejected`, everything on the patient, with the reasons",
         body = ClaimResponse, content_type = "application/fhir+json",
         headers(("Location" = String, description = "/v1/claims/{id}"))),
        (status = 404, description = "Unknown person, or one you may not see", body = super::outcome::OperationOutcome, content_type = "application/fhir+json"),
        (status = 409, description = "This provider already submitted a claim with this identifier: an issue `duplicate` at `Claim.identifier[0].value`", body = super::outcome::OperationOutcome, content_type = "application/fhir+json"),
        (status = 422, description = "A rule broken, each issue at its element, or the `Idempotency-Key` reused with another request; nothing was written",
         body = super::outcome::OperationOutcome, content_type = "application/fhir+json"),
        (status = 428, description = "Idempotency-Key is missing", body = super::outcome::OperationOutcome, content_type = "application/fhir+json"),
    ),
    security(("bearer" = ["claims:submit"]))
)]
pub async fn submit_claim(
    State(state): State<AppState>,
    auth: Authorized<perm::SubmitClaim>,
    headers: axum::http::HeaderMap,
    FhirBody { body, idempotency }: FhirBody,
) -> Result<Response, ApiError> {
    let Some(idempotency) = idempotency else {
        return Err(ApiError::PreconditionRequired {
            header: "Idempotency-Key",
        });
    };
    let claim = match crate::extract::replayed::<Claim>(&state, &auth.caller, Some(&idempotency)).await? {
        Some(first) => first,
        None => {
            let t = translate(&body, &super::public_base(state.config.public_url.as_deref(), &headers));
            let read = read_claim(&t.body, state.clock.today(), &state.national_ids);
            // The rules `check` applies with the store's facts (the provider, the coverages'
            // start) name `/v1` fields too: their faults are reported at the FHIR elements,
            // with the resource's own and the body's, in one answer.
            let (parsed, facts) = t.judge(check(&state, &auth.caller, read, t.has_errors()).await?)?;
            match submit(&state, &auth.caller, &parsed, facts, idempotency).await {
                Err(ApiError::Validation(errors)) => return Err(ApiError::validation(t.located(errors))),
                Err(e) if is_duplicate_identifier(&e) => return Err(duplicate_identifier()),
                other => other?.value,
            }
        }
    };
    let location = format!("/v1/claims/{}", claim.id);
    let mut response = (
        StatusCode::CREATED,
        Fhir(ClaimResponse::new(claim, state.config.operator_org.as_str())),
    )
        .into_response();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// A claim's adjudication as it stands, as FHIR's ClaimResponse.
///
/// `{id}` is the claim id (the ClaimResponse's own `id`, and the `Location` of the submission).
/// The same claim and visibility as `GET /v1/claims/{id}`: its provider, submitter, base payer
/// and routed mutuelle, operators and auditors; 404 for anyone else. A payer's share reads
/// `eligible` until it has adjudicated, `benefit` after; `outcome` is `complete` once no payer
/// has still to.
#[utoipa::path(
    get,
    path = "/fhir/r4/ClaimResponse/{id}",
    operation_id = "fhir_read_claim_response",
    tag = "fhir",
    params(
        ("id" = String, Path, description = "The claim id"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy the client holds (`W/\"3\"`; a list, or `*`): 304 without a body when the claim has not moved since"),
    ),
    responses(
        (status = 200, description = "The claim's adjudication", body = ClaimResponse, content_type = "application/fhir+json", headers(("ETag" = String, description = "`W/\"<meta.versionId>\"`"))),
        (status = 304, description = "`If-None-Match` names the current version. No body", headers(("ETag" = String, description = "`W/\"<meta.versionId>\"`"))),
        (status = 404, description = "No such claim, or not yours", body = super::outcome::OperationOutcome, content_type = "application/fhir+json"),
    ),
    security(("bearer" = ["claims:read"]))
)]
pub async fn read_claim_response(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadClaims>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    let claim = crate::routes::claims::read_visible_claim(&state, &auth.caller, &id).await?;
    let version = claim.version;
    Ok(super::versioned(
        &headers,
        version,
        ClaimResponse::new(claim, state.config.operator_org.as_str()),
    ))
}
