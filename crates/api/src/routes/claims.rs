//! `/v1/claims`: submission with exact coordination of benefits, base and complementary
//! adjudication, cancellation.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{Datelike, NaiveDate};
use passerelle_domain::claim::{
    apply_decisions, ceiling_left, next_status, price_lines, Claim, ClaimLine, ClaimStatus, Role, Transition,
    TransitionError,
};
use passerelle_domain::coordination::{billed, choose_base, choose_complementary, LineDecisionDraft, Shares};
use passerelle_domain::coverage::Coverage;
use passerelle_domain::eligibility::{evaluate_with_later_versions, Reason, ReasonCode};
use passerelle_domain::error::FieldError;
use passerelle_domain::money::{grouped_en, grouped_fr};
use passerelle_domain::money::{Xof, MAX_XOF};
use passerelle_domain::organization::OrgKind;
use passerelle_domain::ports::{
    ClaimError, ClaimFilter, ClaimRefusal, CoverageFacts, IdempotencyKey, UsageKey, Written,
};
use passerelle_domain::product::{CareLevel, Category};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::eligibility::read_person;
use super::{ListOf, PageQuery};
use crate::extract::{perm, replayed, AppJson, AppQuery, Authorized, Caller, IdempotentJson};
use crate::fields::Fields;
use crate::problem::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit_claim, list_claims))
        .routes(routes!(get_claim))
        .routes(routes!(base_adjudication))
        .routes(routes!(adjudication))
        .routes(routes!(cancel_claim))
}

/// Most lines in one claim.
pub const MAX_LINES: usize = 1000;

/// Diagnoses one claim may carry: far more than any care episode has, and a bound on the errors
/// a body of wrong items could make the service build and send back.
pub const MAX_DIAGNOSES: usize = 100;
/// Most units on one line.
pub const MAX_QUANTITY: i64 = 1_000_000;

/// A claim's totals: each share summed over its lines; `base_xof + complementary_xof +
/// patient_xof = billed_xof`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"billed_xof": 10000, "base_xof": 8000, "complementary_xof": 2000, "patient_xof": 0}))]
pub struct SharesView {
    /// What the provider billed.
    pub billed_xof: i64,
    /// What the base scheme pays.
    pub base_xof: i64,
    /// What the routed mutuelle pays.
    pub complementary_xof: i64,
    /// What is left to the patient.
    pub patient_xof: i64,
}

impl From<Shares> for SharesView {
    fn from(s: Shares) -> Self {
        SharesView {
            billed_xof: s.billed_xof.value(),
            base_xof: s.base_xof.value(),
            complementary_xof: s.complementary_xof.value(),
            patient_xof: s.patient_xof.value(),
        }
    }
}

/// One priced line of a claim (API.md §6): `base_xof + complementary_xof + patient_xof =
/// billed_xof`, every share ≥ 0.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"line": 2, "code": "LAB-NFS", "category": "laboratory", "description": "Numération formule sanguine",
    "quantity": 1, "unit_price_xof": 3500, "billed_xof": 3500, "base_xof": 2500, "complementary_xof": 800, "patient_xof": 200,
    "decision": "reduce", "reason_code": "TARIFF_EXCEEDED"}))]
pub struct ClaimLineView {
    /// From 1, in request order.
    #[schema(minimum = 1)]
    pub line: u32,
    /// The facility's act or item code, as sent.
    pub code: String,
    /// The category of care, as sent.
    pub category: String,
    /// As sent, when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub description: Option<String>,
    /// Units, as sent.
    pub quantity: i64,
    /// Price of one unit, as sent.
    pub unit_price_xof: i64,
    /// `quantity × unit_price_xof`.
    pub billed_xof: i64,
    /// The base scheme's share: its adjudicated amount, else `floor(billed × base rate / 10000)`;
    /// 0 without an eligible base coverage.
    pub base_xof: i64,
    /// The mutuelle's share: `floor(remainder × rate / 10000)` within the annual ceiling, then as
    /// adjudicated (never raised).
    pub complementary_xof: i64,
    /// What is left to the patient.
    pub patient_xof: i64,
    /// The routed mutuelle's decision: `accept`, `reject` or `reduce`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub decision: Option<String>,
    /// The mutuelle's reason for its decision, when it gave one (always for `reject`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub reason_code: Option<String>,
}

/// Why no coverage could pay a claim rejected at submission: an eligibility reason.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "CONTRIBUTIONS_IN_ARREARS", "message": "les cotisations ne sont pas à jour"}))]
pub struct ClaimReasonView {
    /// An eligibility reason code (`NOT_STARTED`, `WAITING_PERIOD`, `CONTRIBUTIONS_IN_ARREARS`,
    /// `SUSPENDED`, `TERMINATED`, `ENDED`, `NOT_COVERED`, `DEPENDANT_AGE_LIMIT`…).
    pub code: String,
    /// The reason for people, in the response's language (`Accept-Language`).
    pub message: String,
    /// The first day on which the reason no longer holds, when known and reached by the coverage
    /// (absent when it, or its household, ends first, it was terminated without an end date, or the
    /// child is then past the age limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub until: Option<NaiveDate>,
}

/// A claim and every party's share of it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "01937f0f-1a2b-7c3d-8e4f-5a6b7c8d9e0f", "external_id": "CMS-2026-000123", "provider": "cms-tsevie", "submitter": "cms-tsevie",
    "beneficiary": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f", "service_date": "2026-11-28", "care_level": "health_center",
    "diagnoses": ["J06.9"], "status": "awaiting_base", "base_payer": "tg-inam", "routed_to": "mut-tsevie", "reasons": [],
    "lines": [{"line": 1, "code": "CONS-GEN", "category": "consultation", "quantity": 1, "unit_price_xof": 10001,
               "billed_xof": 10001, "base_xof": 8000, "complementary_xof": 2001, "patient_xof": 0}],
    "totals": {"billed_xof": 10001, "base_xof": 8000, "complementary_xof": 2001, "patient_xof": 0}, "version": 1}))]
pub struct ClaimView {
    /// Claim id, chosen by the server.
    pub id: String,
    /// The provider's own reference, unique per provider.
    pub external_id: String,
    /// The health facility that gave the care.
    pub provider: String,
    /// The submitting organisation (the provider, or a scheme forwarding the claim).
    pub submitter: String,
    /// The person cared for (a beneficiary id).
    pub beneficiary: String,
    /// The day of care: it decides eligibility, the product versions and the plan year.
    pub service_date: NaiveDate,
    /// `health_post`, `health_center`, `hospital` or `university_hospital`.
    pub care_level: String,
    /// ICD-10 codes, as sent; absent when none were.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub diagnoses: Vec<String>,
    /// `awaiting_base`, `awaiting_complementary`, `adjudicated`, `settled`, `rejected`, `cancelled`.
    pub status: String,
    /// The scheme whose base coverage pays; null when none was eligible.
    #[schema(required = true)]
    pub base_payer: Option<String>,
    /// The mutuelle whose complementary or primary coverage pays the complementary share and
    /// adjudicates the claim; null when none was eligible.
    #[schema(required = true)]
    pub routed_to: Option<String>,
    /// Why no payer was eligible, for a claim rejected at submission; empty otherwise.
    pub reasons: Vec<ClaimReasonView>,
    /// The priced lines, in request order.
    pub lines: Vec<ClaimLineView>,
    /// The shares summed over the lines.
    pub totals: SharesView,
    /// The settlement batch that contains it, once batched.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub settlement: Option<String>,
    /// The claim's version: 1 when submitted, one more with each change (the base's or the
    /// mutuelle's adjudication, a cancellation, its batching into a settlement and its
    /// settlement). A webhook event's
    /// `version`: a receiver that read the claim can tell an older event from a newer one.
    #[schema(minimum = 1, example = 1)]
    pub version: u32,
}

impl From<Claim> for ClaimView {
    fn from(c: Claim) -> Self {
        let lang = crate::problem::current_lang();
        ClaimView {
            id: c.id,
            external_id: c.external_id,
            provider: c.provider,
            submitter: c.submitter,
            beneficiary: c.beneficiary,
            service_date: c.service_date,
            care_level: c.care_level.as_str().to_owned(),
            diagnoses: c.diagnoses,
            status: c.status.as_str().to_owned(),
            base_payer: c.base_payer,
            routed_to: c.routed_to,
            reasons: c
                .reasons
                .iter()
                .map(|r| ClaimReasonView {
                    code: r.code.as_str().to_owned(),
                    message: lang.pick(r.code.message_en(), r.code.message_fr()).to_owned(),
                    until: r.until,
                })
                .collect(),
            lines: c
                .lines
                .into_iter()
                .map(|l| ClaimLineView {
                    line: l.line,
                    code: l.code,
                    category: l.category.as_str().to_owned(),
                    description: l.description,
                    quantity: l.quantity,
                    unit_price_xof: l.unit_price_xof.value(),
                    billed_xof: l.shares.billed_xof.value(),
                    base_xof: l.shares.base_xof.value(),
                    complementary_xof: l.shares.complementary_xof.value(),
                    patient_xof: l.shares.patient_xof.value(),
                    decision: l.decision.map(|d| d.as_str().to_owned()),
                    reason_code: l.reason_code.map(|r| r.as_str().to_owned()),
                })
                .collect(),
            totals: c.totals.into(),
            settlement: c.settlement,
            version: c.version,
        }
    }
}

/// One line of a claim as submitted.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"code": "LAB-NFS", "category": "laboratory", "description": "Numération formule sanguine", "quantity": 1, "unit_price_xof": 3500}))]
pub struct ClaimLineWrite {
    /// The facility's act or item code, 1–50 characters, not all white space (`invalid_length`),
    /// without control or invisible formatting characters (`invalid_characters`).
    // `read_claim`: 422 `invalid_length` when blank once trimmed or past 50 characters (counted
    // untrimmed).
    #[schema(min_length = 1, max_length = 50, pattern = r"\S")]
    pub code: String,
    /// `consultation`, `hospitalization`, `pharmacy`, `laboratory`, `imaging`, `maternity`,
    /// `surgery`, `dental`, `optical` or `emergency`; with `care_level` it selects the rule that
    /// prices the line.
    pub category: String,
    /// Free text, at most 500 characters (422 `too_long`), without control or invisible
    /// formatting characters, line breaks included (422 `invalid_characters`).
    // `read_claim`.
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// 1 to 1,000,000.
    // `read_claim`: `1..=MAX_QUANTITY`.
    #[schema(minimum = 1, maximum = 1_000_000_i64)]
    pub quantity: i64,
    /// 1 to 10^12; `quantity × unit_price_xof` at most 10^12.
    // `read_claim`: `1..=MAX_XOF`.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub unit_price_xof: i64,
}

/// The base scheme's amount for one line.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"line": 2, "paid_xof": 2500}))]
pub struct BaseLineWrite {
    /// The claim line's number, from 1.
    #[schema(minimum = 1)]
    pub line: u32,
    /// What the scheme pays for the line, from 0 (422 `out_of_range` below) to its billed amount
    /// (422 `exceeds_billed` above), which is at most 10^12.
    // `base_paid`: 0 and up; a line's billed amount is at most `MAX_XOF`.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub paid_xof: i64,
}

/// A base scheme's own amounts for a claim: the body of `POST /v1/claims/{id}/base-adjudication`,
/// and `base_adjudication` of a claim a scheme forwards.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"lines": [{"line": 1, "paid_xof": 4000}, {"line": 2, "paid_xof": 2500}, {"line": 3, "paid_xof": 1200}]}))]
pub struct BaseAdjudicationWrite {
    /// Each line at most once (422 on the entry's `line`: `required`, `unknown_line`, or
    /// `duplicate` when an earlier entry named it, even one refused for another reason). On the
    /// base-adjudication endpoint every line of the claim must be named (422 `every_line_once`);
    /// in a forwarded claim, a line not named gets a base share of 0.
    pub lines: Vec<BaseLineWrite>,
}

/// The body of `POST /v1/claims/{id}/adjudication`: the routed mutuelle's decision on every
/// line of the claim.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"lines": [
    {"line": 1, "decision": "accept"},
    {"line": 2, "decision": "reduce", "approved_xof": 800, "reason_code": "TARIFF_EXCEEDED"},
    {"line": 3, "decision": "reject", "reason_code": "NOT_JUSTIFIED"}]}))]
pub struct AdjudicationWrite {
    /// Every line of the claim exactly once: 422 on the entry's `line` when it is absent
    /// (`required`), names no line (`unknown_line`) or one an earlier entry named (`duplicate`,
    /// even when that entry is refused for another reason), and `every_line_once` on `/lines`
    /// when the body is otherwise valid but leaves a line out. A field of the wrong type is
    /// `invalid_type` alone.
    pub lines: Vec<LineDecisionWrite>,
}

/// The routed mutuelle's decision on one line.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"line": 2, "decision": "reduce", "approved_xof": 800, "reason_code": "TARIFF_EXCEEDED"}))]
pub struct LineDecisionWrite {
    /// The claim line's number, from 1.
    #[schema(minimum = 1)]
    pub line: u32,
    /// `accept`, `reject` or `reduce`.
    pub decision: DecisionWrite,
    /// With `reduce` only, where it is required: the complementary amount approved, from 0 to the
    /// line's proposed `complementary_xof` (422 `exceeds_proposed`). With another decision it is
    /// 422 `not_allowed_for_decision`.
    // `LineDecisionDraft` (coordination.rs): `0..=MAX_XOF`, else 422 `out_of_range`.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub approved_xof: Option<i64>,
    /// Why: required with `reject`, optional with `reduce` and `accept`.
    pub reason_code: Option<AdjudicationReasonWrite>,
}

/// A mutuelle's decision on a line: `accept` pays the proposed complementary share, `reduce`
/// pays `approved_xof` instead, `reject` pays nothing. What is not paid moves to the patient's
/// share and frees annual ceiling.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DecisionWrite {
    Accept,
    Reject,
    Reduce,
}

/// Why a mutuelle rejected or reduced a line.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AdjudicationReasonWrite {
    NotCovered,
    ExcludedCategory,
    CeilingExhausted,
    Duplicate,
    NotJustified,
    TariffExceeded,
    MissingDocument,
    Other,
}

/// The body of `POST /v1/claims`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"external_id": "CMS-2026-000123", "provider": "cms-tsevie",
    "beneficiary": {"organization": "mut-tsevie", "member_number": "TSV-0042"}, "service_date": "2026-11-28",
    "care_level": "health_center", "diagnoses": ["J06.9"],
    "lines": [{"code": "CONS-GEN", "category": "consultation", "quantity": 1, "unit_price_xof": 10001}]}))]
pub struct ClaimWrite {
    /// The provider's own reference, 1–100 characters, not all white space, without control or
    /// invisible formatting characters (422 `invalid_characters`); kept trimmed, in Unicode's NFKC
    /// form (an `É` sent as `E` and an accent is kept as one character, a no-break space as a
    /// space, full-width letters as plain ones), its case as sent; unique per provider in that
    /// form: a second claim with it is 409, `external_id_taken` at `/external_id`.
    // `fields::reference_error`.
    #[schema(
        min_length = 1,
        max_length = 100,
        pattern = r"^\s*[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*\s*$"
    )]
    pub external_id: String,
    /// The health facility that gave the care (an organisation of kind `provider`); a provider
    /// names itself (422 `not_own_organization` for another organisation, `unknown_reference`
    /// for an id no organisation has); a scheme forwarding a claim names a health facility
    /// (422 `not_a_provider` otherwise).
    pub provider: String,
    /// As for eligibility: `{id}`, `{national_id}` or `{organization, member_number}`.
    pub beneficiary: super::eligibility::PersonSelector,
    /// Not after today, nor before the person's coverages begin (422 `in_future`,
    /// `before_coverage`; for a scheme, the coverages a check lists to it).
    pub service_date: NaiveDate,
    /// `health_post`, `health_center`, `hospital` or `university_hospital`: where the care was
    /// given.
    pub care_level: String,
    /// ICD-10 codes such as `J06.9` or `B54`; at most 100.
    // `MAX_DIAGNOSES`; each item as `is_icd10` reads it.
    #[schema(value_type = Option<Vec<Icd10Code>>, max_items = 100)]
    pub diagnoses: Option<Vec<String>>,
    /// 1 to 1000 lines, numbered from 1 in this order; the claim's total at most 10^12.
    // `MAX_LINES`.
    #[schema(min_items = 1, max_items = 1000)]
    pub lines: Vec<ClaimLineWrite>,
    /// A scheme's own base amounts, replacing its computed base share: only from a scheme that
    /// is the person's eligible base payer (422 `not_allowed` from a provider, `not_base_payer`
    /// otherwise). Lines it does not name get a base share of 0.
    pub base_adjudication: Option<BaseAdjudicationWrite>,
}

/// An ICD-10 code as the server reads it: a capital letter, a digit, a digit or capital
/// letter, then optionally a dot and 1 to 4 letters or digits (`J06.9`, `B54`). Schema only.
#[derive(ToSchema)]
#[allow(dead_code)] // Schema only: never built.
#[schema(pattern = "^[A-Z][0-9][0-9A-Z](?:\\.[0-9A-Za-z]{1,4})?$", example = "J06.9")]
pub struct Icd10Code(String);

/// How many times a claim is routed when concurrent claims keep using up the ceiling it was
/// routed on.
const MAX_ROUTINGS: u32 = 3;

/// 409 for a transition the claim's state does not allow. The code names that state
/// (`claim_cancelled`, `claim_adjudicated`, …): a retried cancel or adjudication that already
/// succeeded is told from one refused.
pub fn illegal_state(state: ClaimStatus) -> ApiError {
    crate::problem::conflict_at(
        "",
        &format!("claim_{}", state.as_str()),
        &format!("Not possible while the claim is {}.", state.as_str()),
        &format!(
            "Impossible : la demande de remboursement est au statut « {} » ({}).",
            state.as_str(),
            french_status(state)
        ),
    )
}

/// A claim's status as a clerk reads it in French, beside its code.
fn french_status(state: ClaimStatus) -> &'static str {
    match state {
        ClaimStatus::AwaitingBase => "en attente du régime de base",
        ClaimStatus::AwaitingComplementary => "en attente de la mutuelle",
        ClaimStatus::Adjudicated => "liquidée",
        ClaimStatus::Settled => "réglée",
        ClaimStatus::Rejected => "rejetée",
        ClaimStatus::Cancelled => "annulée",
    }
}

fn refusal(e: ClaimError) -> ApiError {
    match e {
        ClaimError::Store(s) => s.into(),
        ClaimError::Refused(ClaimRefusal::NotAllowed) => ApiError::forbidden(
            "Your organisation takes no part in this claim that allows this action.",
            "Votre organisation n'a pas, dans cette demande de remboursement, le rôle qui permet cette action.",
        ),
        ClaimError::Refused(ClaimRefusal::IllegalState(state)) => illegal_state(state),
        ClaimError::Refused(ClaimRefusal::Invalid(errors)) => ApiError::validation(errors),
        // The ceiling moved under every routing: contention (503, nothing written, try again),
        // never a claim routed to a mutuelle that owes nothing on it.
        ClaimError::Refused(ClaimRefusal::Rerouted) => {
            passerelle_domain::error::StoreError::Contention("the claim's payers changed while it was priced".into())
                .into()
        }
    }
}

fn is_icd10(code: &str) -> bool {
    let b = code.as_bytes();
    b.len() >= 3
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_digit()
        && (b[2].is_ascii_digit() || b[2].is_ascii_uppercase())
        && (b.len() == 3
            || (b[3] == b'.' && (5..=8).contains(&b.len()) && b[4..].iter().all(u8::is_ascii_alphanumeric)))
}

/// A claim as read from a request, whichever form (`/v1` or FHIR) it came in, every field well
/// formed: what is priced and stored.
pub(crate) struct ParsedClaim {
    /// In its kept form (`text::reference_form`).
    pub external_id: String,
    /// As sent, trimmed, when that differs from the kept form: a claim stored before references
    /// were kept so holds it.
    pub external_id_as_sent: Option<String>,
    pub provider: String,
    pub person: passerelle_domain::ports::PersonKey,
    pub service_date: NaiveDate,
    pub care_level: CareLevel,
    pub diagnoses: Vec<String>,
    pub lines: Vec<ClaimLine>,
    pub base_adjudication: Option<Vec<(u32, Xof)>>,
}

/// A claim's body as read, before the checks that need the store: each field that was well
/// formed, and the faults of the others. The store's checks then judge each field that was well
/// formed (the provider, the person's coverages), so that one answer lists every fault.
pub(crate) struct ClaimRead {
    pub external_id: Option<String>,
    pub external_id_as_sent: Option<String>,
    pub provider: Option<String>,
    pub person: Option<passerelle_domain::ports::PersonKey>,
    pub service_date: Option<NaiveDate>,
    pub care_level: Option<CareLevel>,
    pub diagnoses: Vec<String>,
    /// Every line, when each of them, and the list as a whole, was well formed.
    pub lines: Option<Vec<ClaimLine>>,
    /// Whether the body holds a `base_adjudication` (not null), well formed or not.
    pub base_adjudication_given: bool,
    /// The entries of `base_adjudication` that were well formed.
    pub base_adjudication: Option<Vec<(u32, Xof)>>,
    /// The body's own faults.
    pub errors: Vec<FieldError>,
}

impl ClaimRead {
    /// Whether a fault was found at `field` or inside it.
    fn faulty(&self, field: &str) -> bool {
        self.errors
            .iter()
            .any(|e| e.field == field || e.field.starts_with(&format!("{field}/")))
    }

    /// The claim, when the body has no fault.
    fn complete(self) -> Result<ParsedClaim, Vec<FieldError>> {
        match (
            self.external_id,
            self.provider,
            self.person,
            self.service_date,
            self.care_level,
            self.lines,
        ) {
            (Some(external_id), Some(provider), Some(person), Some(service_date), Some(care_level), Some(lines))
                if self.errors.is_empty() =>
            {
                Ok(ParsedClaim {
                    external_id,
                    external_id_as_sent: self.external_id_as_sent,
                    provider,
                    person,
                    service_date,
                    care_level,
                    diagnoses: self.diagnoses,
                    lines,
                    base_adjudication: self.base_adjudication,
                })
            }
            _ => Err(self.errors),
        }
    }
}

pub(crate) fn read_claim(
    body: &Map<String, Value>,
    today: NaiveDate,
    rules: &passerelle_domain::beneficiary::NationalIdRules,
) -> ClaimRead {
    let mut f = Fields::new(body);
    let mut errors = Vec::new();
    let external_id = f.str("external_id");
    let provider = f.str("provider");
    let person_obj = f.opt_object("beneficiary");
    let service_date = f.str("service_date");
    let care_level = f.str("care_level");
    let too_many_diagnoses = body
        .get("diagnoses")
        .and_then(Value::as_array)
        .is_some_and(|d| d.len() > MAX_DIAGNOSES);
    let diagnoses = if too_many_diagnoses {
        // Read past as a whole: one error, not one per item.
        f.opt_array("diagnoses");
        errors.push(FieldError::new(
            "/diagnoses",
            "invalid_length",
            format!("must hold at most {MAX_DIAGNOSES} codes"),
            format!("doit contenir au plus {MAX_DIAGNOSES} codes"),
        ));
        Vec::new()
    } else {
        f.opt_str_list("diagnoses").unwrap_or_default()
    };
    let line_objs = f.opt_array("lines");
    let base_obj = f.opt_object("base_adjudication");
    errors.extend(f.finish());
    let person = if body.get("beneficiary").is_some_and(|v| !v.is_null()) {
        person_obj.and_then(|o| read_person(Some(o), rules, &mut errors))
    } else {
        read_person(None, rules, &mut errors)
    };
    // Judged in the form it is kept in, which may be longer than the one sent (`№` is `No`).
    let external_id_sent = external_id.as_deref().map(|e| e.trim().to_owned());
    let external_id = external_id.map(|e| {
        let kept = passerelle_domain::text::reference_form(&e);
        if kept.is_empty() {
            e
        } else {
            kept
        }
    });
    errors.extend(
        external_id
            .as_deref()
            .and_then(|e| crate::fields::reference_error("/external_id", e)),
    );
    let service_date = service_date.and_then(|raw| match passerelle_domain::dates::parse(&raw).ok_or(()) {
        Ok(d) if d > today => {
            errors.push(FieldError::new(
                "/service_date",
                "in_future",
                "must not be after today",
                "ne doit pas être postérieure à aujourd'hui",
            ));
            None
        }
        Ok(d) if d.year() < 1900 => {
            errors.push(FieldError::new(
                "/service_date",
                "out_of_range",
                "must be 1900 or later",
                "ne doit pas être antérieure à 1900",
            ));
            None
        }
        Ok(d) => Some(d),
        Err(_) => {
            errors.push(FieldError::new(
                "/service_date",
                "invalid_date",
                "must be YYYY-MM-DD",
                "doit être au format AAAA-MM-JJ",
            ));
            None
        }
    });
    let care_level = care_level.and_then(|c| {
        CareLevel::parse(&c).or_else(|| {
            errors.push(FieldError::new(
                "/care_level",
                "unknown_value",
                "must be health_post, health_center, hospital or university_hospital",
                "doit être health_post, health_center, hospital ou university_hospital",
            ));
            None
        })
    });
    for (i, d) in diagnoses.iter().enumerate() {
        // An item of the wrong type is reported already, at its own index.
        let Some(d) = d else { continue };
        if !is_icd10(d) {
            errors.push(FieldError::new(
                format!("/diagnoses/{i}"),
                "invalid_icd10",
                "must be an ICD-10 code such as J06.9",
                "doit être un code CIM-10 comme J06.9",
            ));
        }
    }
    let mut lines = Vec::new();
    match line_objs {
        None if body.get("lines").is_none_or(Value::is_null) => errors.push(FieldError::required("/lines")),
        None => {}
        Some(items) if items.is_empty() || items.len() > MAX_LINES => errors.push(FieldError::new(
            "/lines",
            "invalid_length",
            format!("must hold 1 to {MAX_LINES} lines"),
            format!("doit contenir de 1 à {MAX_LINES} lignes"),
        )),
        Some(items) => {
            let mut total = 0_i64;
            for (i, item) in items.iter().enumerate() {
                let p = format!("/lines/{i}");
                let Some(obj) = item.as_object() else {
                    errors.push(FieldError::new(
                        &p,
                        "invalid_type",
                        "must be an object",
                        "doit être un objet",
                    ));
                    continue;
                };
                let mut g = Fields::nested(obj, &p);
                let code = g.str("code");
                let category = g.str("category");
                let description = g.opt_str("description");
                let quantity = g.opt_i64("quantity");
                let price = g.opt_i64("unit_price_xof");
                for (name, present) in [("quantity", quantity.is_some()), ("unit_price_xof", price.is_some())] {
                    if !present && obj.get(name).is_none_or(Value::is_null) {
                        g.errors.push(FieldError::required(format!("{p}/{name}")));
                    }
                }
                errors.extend(g.finish());
                // An act's code is a reference too: an invisible character would make one act
                // look like another.
                if let Some(e) = code
                    .as_deref()
                    .and_then(|c| crate::fields::code_error(&format!("{p}/code"), c, 50))
                {
                    errors.push(e);
                }
                if description.as_ref().is_some_and(|d| d.chars().count() > 500) {
                    errors.push(FieldError::new(
                        format!("{p}/description"),
                        "too_long",
                        "must be at most 500 characters",
                        "doit compter au plus 500 caractères",
                    ));
                } else if description
                    .as_ref()
                    .is_some_and(|d| d.chars().any(passerelle_domain::text::is_forbidden))
                {
                    // A line break splits the adjudicator's table and a statement's CSV row; a
                    // right-to-left override shows the text reversed.
                    errors.push(FieldError::control_characters(format!("{p}/description")));
                }
                let category = category.and_then(|c| {
                    Category::parse(&c).or_else(|| {
                        errors.push(FieldError::new(
                            format!("{p}/category"),
                            "unknown_value",
                            format!("must be one of {}", Category::ALL.map(Category::as_str).join(", ")),
                            format!(
                                "doit être l'une des valeurs {}",
                                Category::ALL.map(Category::as_str).join(", ")
                            ),
                        ));
                        None
                    })
                });
                if quantity.is_some_and(|q| !(1..=MAX_QUANTITY).contains(&q)) {
                    errors.push(FieldError::new(
                        format!("{p}/quantity"),
                        "out_of_range",
                        format!("must be from 1 to {}", grouped_en(MAX_QUANTITY)),
                        format!("doit être de 1 à {}", grouped_fr(MAX_QUANTITY)),
                    ));
                }
                if price.is_some_and(|x| !(1..=MAX_XOF).contains(&x)) {
                    errors.push(FieldError::new(
                        format!("{p}/unit_price_xof"),
                        "out_of_range",
                        format!("must be from 1 to {} XOF", grouped_en(MAX_XOF)),
                        format!("doit être de 1 à {} XOF", grouped_fr(MAX_XOF)),
                    ));
                }
                let (Some(code), Some(category), Some(quantity), Some(price)) = (code, category, quantity, price)
                else {
                    continue;
                };
                // A quantity or price already refused says enough: their product would only add a
                // second error about the same mistake.
                if !(1..=MAX_QUANTITY).contains(&quantity) || !(1..=MAX_XOF).contains(&price) {
                    continue;
                }
                let Ok(line_total) = billed(quantity, Xof(price)) else {
                    errors.push(FieldError::new(
                        format!("{p}/unit_price_xof"),
                        "line_total_too_large",
                        format!("quantity × unit_price_xof must be at most {} XOF", grouped_en(MAX_XOF)),
                        format!(
                            "quantity × unit_price_xof ne doit pas dépasser {} XOF",
                            grouped_fr(MAX_XOF)
                        ),
                    ));
                    continue;
                };
                total = total.saturating_add(line_total.value());
                lines.push(ClaimLine {
                    line: u32::try_from(i + 1).unwrap_or(u32::MAX),
                    code: code.trim().to_owned(),
                    category,
                    description,
                    quantity,
                    unit_price_xof: Xof(price),
                    shares: Shares {
                        billed_xof: line_total,
                        ..Shares::default()
                    },
                    base_rate: None,
                    complementary_rate: None,
                    base_adjudicated: None,
                    decision: None,
                    reason_code: None,
                });
            }
            if total > MAX_XOF {
                errors.push(FieldError::new(
                    "/lines",
                    "claim_total_too_large",
                    format!("the claim's total must be at most {} XOF", grouped_en(MAX_XOF)),
                    format!(
                        "le total de la demande ne doit pas dépasser {} XOF",
                        grouped_fr(MAX_XOF)
                    ),
                ));
            }
        }
    }
    let base_adjudication = match base_obj {
        None => None,
        Some(obj) => {
            let mut g = Fields::nested(obj, "/base_adjudication");
            let entries = g
                .opt_objects("lines", |l| (l.opt_i64("line"), l.opt_i64("paid_xof")))
                .unwrap_or_default();
            errors.extend(g.finish());
            let mut out = Vec::new();
            let (mut taken, mut rules) = (Vec::new(), Vec::new());
            // A line exists when the body holds it, even one refused for its own faults (its
            // errors are listed already, and `lines` holds only the lines that parsed): that one
            // is taken, but its bill is unknown. When `lines` is no array, no line can be judged.
            let line_count = match line_objs {
                Some(items) => Some(items.len()),
                None if body.get("lines").is_none_or(Value::is_null) => Some(0),
                None => None,
            };
            let exists = |n: u32| n >= 1 && line_count.is_none_or(|c| usize::try_from(n).is_ok_and(|n| n <= c));
            for (i, entry) in entries.into_iter().enumerate() {
                let Some((line, paid)) = entry else { continue };
                let p = format!("/base_adjudication/lines/{i}");
                let n = decided_line(exists, &p, line, &mut taken, &mut rules);
                let billed = n
                    .and_then(|n| lines.iter().find(|l| l.line == n))
                    .map(|l| l.shares.billed_xof);
                if let (Some(n), Some(paid)) = (n, base_paid(&p, paid, billed, &mut rules)) {
                    out.push((n, paid));
                }
            }
            // A field of the wrong type was read as absent: its `invalid_type` alone stands.
            errors = crate::fields::merge(errors, rules);
            Some(out)
        }
    };
    let lines_whole = line_objs.is_some_and(|items| items.len() == lines.len())
        && !errors
            .iter()
            .any(|e| e.field == "/lines" || e.field.starts_with("/lines/"));
    ClaimRead {
        external_id_as_sent: external_id_sent.filter(|sent| Some(sent) != external_id.as_ref()),
        external_id: external_id.filter(|e| !e.trim().is_empty() && e.chars().count() <= 100),
        provider,
        person,
        service_date,
        care_level,
        diagnoses: diagnoses.into_iter().flatten().collect(),
        lines: lines_whole.then_some(lines),
        base_adjudication_given: body.get("base_adjudication").is_some_and(|v| !v.is_null()),
        base_adjudication,
        errors,
    }
}

/// A coverage that may pay this claim, as an eligibility check would judge it: eligible by
/// status, dates, waiting period, contributions, age and ceiling, and paying at least one of the
/// claim's lines at its care level. A coverage that pays none of them (every line's category
/// excluded, or no rule or a 0 % rule) is not eligible, so the claim goes to the next payer, or
/// is `rejected` with those reasons, never routed to a payer whose rules pay nothing of it (one
/// they pay is routed even when the base shares leave it nothing: API.md §5 Claims). The ceiling read
/// here may be stale: pricing cuts again under lock.
fn claim_eligible(
    facts: &passerelle_domain::ports::EligibilityFacts,
    c: &CoverageFacts,
    care: &Care<'_>,
) -> (bool, Vec<Reason>) {
    let judge = |category: Option<Category>| {
        let input = facts.input(c, care.service_date, care.care_level, category);
        evaluate_with_later_versions(&input, &c.later_versions).reasons
    };
    let pays_for = |r: &Reason| matches!(r.code, ReasonCode::NotCovered | ReasonCode::ExcludedCategory);
    let mut blocking: Vec<Reason> = judge(None).into_iter().filter(|r| !pays_for(r)).collect();
    let per_line: Vec<Vec<Reason>> = care
        .lines
        .iter()
        .map(|line| judge(Some(line.category)).into_iter().filter(pays_for).collect())
        .collect();
    if !per_line.iter().any(Vec::is_empty) {
        for reason in per_line.into_iter().flatten() {
            merge_reason(&mut blocking, reason);
        }
        blocking.sort_by_key(|r| r.code);
    }
    (blocking.is_empty() && c.product.is_some(), blocking)
}

/// What the person's coverages are judged on: the day, the care level and every line.
struct Care<'a> {
    service_date: NaiveDate,
    care_level: CareLevel,
    lines: &'a [ClaimLine],
}

/// The person's coverages judged for a claim, and the payers chosen among the eligible ones.
struct Payers<'f> {
    judged: Vec<(&'f CoverageFacts, bool, Vec<Reason>)>,
    base: Option<&'f CoverageFacts>,
    comp: Option<&'f CoverageFacts>,
}

fn payers<'f>(facts: &'f passerelle_domain::ports::EligibilityFacts, care: &Care<'_>) -> Payers<'f> {
    let judged: Vec<(&CoverageFacts, bool, Vec<Reason>)> = facts
        .coverages
        .iter()
        .map(|c| {
            let (ok, reasons) = claim_eligible(facts, c, care);
            (c, ok, reasons)
        })
        .collect();
    let eligible: Vec<&Coverage> = judged
        .iter()
        .filter(|(_, ok, _)| *ok)
        .map(|(c, _, _)| &c.coverage)
        .collect();
    let base =
        choose_base(eligible.iter().copied()).and_then(|b| facts.coverages.iter().find(|c| c.coverage.id == b.id));
    let comp = choose_complementary(eligible.iter().copied())
        .and_then(|m| facts.coverages.iter().find(|c| c.coverage.id == m.id));
    Payers { judged, base, comp }
}

/// Adds `reason` to a claim's reasons, one per code. Lines of several categories, or several
/// coverages, may see one code end on different days (a later version covering one of them).
/// The claim is refused while every line of every coverage is, so the reason stops refusing it
/// on the first of those days: the earliest `until`, and none only when none of them ends.
fn merge_reason(reasons: &mut Vec<Reason>, reason: Reason) {
    match reasons.iter_mut().find(|r| r.code == reason.code) {
        Some(known) => {
            known.until = match (known.until, reason.until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        }
        None => reasons.push(reason),
    }
}

/// Submit a claim (a provider for itself, or a scheme forwarding one; `Idempotency-Key` required).
///
/// Providers and schemes with `claims:submit` (403 for other kinds); 428 without
/// `Idempotency-Key`. A scheme forwards claims of its own affiliates only, named by its own
/// member numbers if by any (404 otherwise, as for an unknown person). The
/// claim is priced at once by coordination of benefits (API.md §6) with the coverages eligible
/// on `service_date` that pay at least one of its lines (a coverage whose product excludes, or
/// does not cover, every line's category at this care level is passed over, as is one whose
/// annual ceiling is spent). It starts `awaiting_base` when a base coverage is eligible and no
/// `base_adjudication` was sent, else `awaiting_complementary` when a complementary or primary
/// coverage is (or `adjudicated` when only the forwarding scheme pays), else `rejected`: 201 all
/// the same, everything on the patient, with the eligibility `reasons`. Subscribers receive
/// `claim.submitted`. A 422 lists every fault at once, those found with the store's facts (the
/// provider, the person's coverages) with the body's; an unknown person is 404 when nothing else
/// is at fault.
#[utoipa::path(
    post,
    path = "/v1/claims",
    tag = "claims",
    request_body = ClaimWrite,
    params(("Idempotency-Key" = String, Header, description = "Required: the same key and body replay the first response")),
    responses(
        (status = 201, description = "Accepted and priced; a claim with no eligible payer is `rejected` with everything on the patient and the reasons", body = ClaimView,
         headers(("Location" = String, description = "/v1/claims/{id}"))),
        (status = 404, description = "Unknown person, or one you may not see", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "A claim of this provider already has this `external_id`, whatever its status: `external_id_taken` at `/external_id`", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 428, description = "Idempotency-Key is missing", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["claims:submit"]))
)]
pub async fn submit_claim(
    State(state): State<AppState>,
    auth: Authorized<perm::SubmitClaim>,
    IdempotentJson { body, idempotency }: IdempotentJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let Some(idempotency) = idempotency else {
        return Err(ApiError::PreconditionRequired {
            header: "Idempotency-Key",
        });
    };
    if let Some(first) = replayed::<Claim>(&state, &auth.caller, Some(&idempotency)).await? {
        let view = ClaimView::from(first);
        return Ok(super::created(format!("/v1/claims/{}", view.id), &view));
    }
    let read = read_claim(&body, state.clock.today(), &state.national_ids);
    let (parsed, facts) = check(&state, &auth.caller, read, false)
        .await?
        .map_err(ApiError::validation)?;
    let written = submit(&state, &auth.caller, &parsed, facts, idempotency).await?;
    let view = ClaimView::from(written.value);
    Ok(super::created(format!("/v1/claims/{}", view.id), &view))
}

/// The code of the 409 of an `external_id` its provider already used.
pub const EXTERNAL_ID_TAKEN: &str = "external_id_taken";

/// The 409 of a claim whose `external_id` its provider already used (the store's
/// `external_id_taken`), its code at `/external_id`.
pub fn duplicate_external_id() -> ApiError {
    crate::problem::conflict_at(
        "/external_id",
        EXTERNAL_ID_TAKEN,
        "A claim of this provider already has this external_id, whatever its status: a claim is not paid twice. Find it with GET /v1/claims?external_id=; a correction is sent under a new external_id.",
        "Une demande de remboursement de ce prestataire porte déjà cet external_id, quel que soit son statut : une demande n'est pas payée deux fois. Retrouvez-la avec GET /v1/claims?external_id= ; envoyez toute correction sous un nouvel external_id.",
    )
}

/// A claim judged with the store's facts: ready to price, with the person's facts, or every
/// fault of the request.
pub(crate) type Checked = Result<(ParsedClaim, passerelle_domain::ports::EligibilityFacts), Vec<FieldError>>;

/// Judges a claim's body with what the store knows, each field that was well formed even when
/// others were not, so that one answer lists every fault: the provider (a provider names itself;
/// anyone else an existing provider), a provider's `base_adjudication`, and, when the person is
/// one the caller may see, the day of care against their coverages and a scheme's
/// `base_adjudication` against their eligible base payer. `faulty_elsewhere` says the request
/// has faults the body does not show (a FHIR resource's own): those stand before a 404.
///
/// An unknown person, or one a scheme does not cover, is 404 when nothing else is at fault;
/// otherwise the 422 lists the other faults and nothing of the person. Nothing is written.
pub(crate) async fn check(
    state: &AppState,
    caller: &Caller,
    read: ClaimRead,
    faulty_elsewhere: bool,
) -> Result<Checked, ApiError> {
    let mut errors = read.errors.clone();
    if let Some(provider) = &read.provider {
        if let Some(fault) = provider_fault(state, caller, provider).await? {
            errors.push(fault);
        }
    }
    let provider_sends_base = caller.kind == OrgKind::Provider && read.base_adjudication_given;
    if provider_sends_base {
        // The member is refused whole: what is wrong inside it no longer matters.
        errors.retain(|e| !(e.field == "/base_adjudication" || e.field.starts_with("/base_adjudication/")));
        errors.push(FieldError::new(
            "/base_adjudication",
            "not_allowed",
            "only a scheme submits its own base adjudication",
            "seul un régime soumet sa propre liquidation de base",
        ));
    }
    let facts = match (&read.person, read.service_date) {
        // Another organisation's numbering is not read for a scheme (a 404 when nothing else is
        // wrong), so that what it covers is not told.
        (Some(person), _) if !super::eligibility::may_name(caller, person) => None,
        (Some(person), Some(service_date)) => {
            match super::eligibility::facts_of(state, person, service_date, true).await {
                // One fault among the others the 422 lists.
                Err(e) if super::eligibility::is_ambiguous(&e) => {
                    errors.push(super::eligibility::ambiguous_person());
                    None
                }
                facts => facts?.filter(|facts| super::eligibility::may_check(caller, person, facts)),
            }
        }
        _ => None,
    };
    let Some(facts) = facts else {
        // Every field left unread above has its fault listed already.
        return if errors.is_empty() && !faulty_elsewhere {
            Err(ApiError::NotFound)
        } else {
            Ok(Err(errors))
        };
    };
    if let Some(service_date) = read.service_date {
        // The payers are judged on a claim whose day, care level and lines are all well formed,
        // and only for a `base_adjudication` that is itself.
        let care = match (read.care_level, &read.lines) {
            (Some(care_level), Some(lines)) => Some(Care {
                service_date,
                care_level,
                lines,
            }),
            _ => None,
        };
        let judge_base = read.base_adjudication_given && !provider_sends_base && !read.faulty("/base_adjudication");
        errors.extend(fact_faults(caller, &facts, service_date, care.as_ref(), judge_base));
    }
    match read.complete() {
        Ok(parsed) if errors.is_empty() => Ok(Ok((parsed, facts))),
        // The body's own faults are in `errors` already.
        _ => Ok(Err(errors)),
    }
}

/// The fault of `provider`, as the caller names it: a provider submits claims for itself only
/// (`not_own_organization` when it names another organisation, which every caller may read;
/// `unknown_reference` when no organisation has that id); a scheme forwards claims of an
/// existing provider (`unknown_reference` otherwise).
async fn provider_fault(state: &AppState, caller: &Caller, provider: &str) -> Result<Option<FieldError>, ApiError> {
    if caller.kind == OrgKind::Provider && provider == caller.org.as_str() {
        return Ok(None);
    }
    let org = match passerelle_domain::organization::OrgId::parse(provider) {
        Some(_) => state.store.get_organization(provider).await?,
        None => None,
    };
    Ok(match (caller.kind, org) {
        (_, None) => Some(FieldError::unknown_reference("/provider")),
        (OrgKind::Provider, Some(_)) => Some(FieldError::new(
            "/provider",
            "not_own_organization",
            format!("a provider submits claims for itself only: must be {}", caller.org),
            format!(
                "un prestataire ne soumet de demandes que pour lui-même : doit être {}",
                caller.org
            ),
        )),
        (_, Some(org)) if org.kind != OrgKind::Provider => Some(FieldError::new(
            "/provider",
            "not_a_provider",
            format!("{} is not a health facility: a claim's provider is one", org.id),
            format!(
                "{} n'est pas une formation sanitaire : seule une formation sanitaire peut être le prestataire d'une demande",
                org.id
            ),
        )),
        (_, Some(_)) => None,
    })
}

/// The faults the person's facts reveal: a day of care before the coverages the caller may see
/// begin (`before_coverage`), and, with `care` (a claim otherwise priceable) and a `base_adjudication`
/// (`judge_base`), a caller that is not their eligible base payer (`not_base_payer`).
fn fact_faults(
    caller: &Caller,
    facts: &passerelle_domain::ports::EligibilityFacts,
    service_date: NaiveDate,
    care: Option<&Care<'_>>,
    judge_base: bool,
) -> Vec<FieldError> {
    // Judged on the coverages the caller may see, as a check lists them: a scheme is not told,
    // by this fault or its absence, that another mutuelle's coverage began earlier, nor when.
    let first_start = facts
        .coverages
        .iter()
        .filter(|c| super::eligibility::shows(caller, &c.coverage))
        .map(|c| c.coverage.start_date)
        .min();
    if let Some(first_start) = first_start.filter(|start| service_date < *start) {
        return vec![FieldError::new(
            "/service_date",
            "before_coverage",
            format!("is before the person's coverages begin ({first_start})"),
            format!("précède le début des couvertures de la personne ({first_start})"),
        )];
    }
    match care {
        Some(care)
            if judge_base
                && payers(facts, care)
                    .base
                    .is_none_or(|b| b.coverage.organization != caller.org.as_str()) =>
        {
            vec![FieldError::new(
                "/base_adjudication",
                "not_base_payer",
                "you are not this person's eligible base payer",
                "vous n'êtes pas le régime de base dont la couverture de cette personne est en vigueur à la date des soins",
            )]
        }
        _ => Vec::new(),
    }
}

/// Prices and stores a claim that [`check`] found valid, with the facts it read: the one path of
/// both the `/v1` and the FHIR forms. A replay of the same `Idempotency-Key` and request gives
/// back the claim first written.
pub(crate) async fn submit(
    state: &AppState,
    caller: &Caller,
    parsed: &ParsedClaim,
    facts: passerelle_domain::ports::EligibilityFacts,
    idempotency: IdempotencyKey,
) -> Result<Written<Claim>, ApiError> {
    // A claim stored before references were kept in one form holds the form it was sent in: the
    // same invoice sent again in that form is that claim, not a new one. (The kept form's own
    // uniqueness is the store's.) A retry of this very request replays as usual.
    if let Some(sent) = &parsed.external_id_as_sent {
        if crate::extract::replayed::<Claim>(state, caller, Some(&idempotency))
            .await?
            .is_none()
        {
            let filter = ClaimFilter {
                party: Some(parsed.provider.clone()),
                status: None,
                since: None,
                external_id: Some(sent.clone()),
            };
            let page = passerelle_domain::pagination::PageRequest { limit: 1, after: None };
            if state
                .store
                .list_claims(&filter, &page)
                .await?
                .items
                .iter()
                .any(|c| c.provider == parsed.provider)
            {
                return Err(duplicate_external_id());
            }
        }
    }
    let mut facts = Some(facts);
    let mut routings = 1;
    loop {
        match route(state, caller, parsed, facts.take(), &idempotency).await? {
            Err(ClaimError::Refused(ClaimRefusal::Rerouted)) if routings < MAX_ROUTINGS => routings += 1,
            Err(ClaimError::Store(passerelle_domain::error::StoreError::Conflict { constraint }))
                if constraint == EXTERNAL_ID_TAKEN =>
            {
                return Err(duplicate_external_id())
            }
            written => return written.map_err(refusal),
        }
    }
}

/// Judges the person's coverages, routes the claim to its payers and writes it: the store's
/// refusal is handed back as it is, for `submit` to route again when the ceiling it was routed on
/// is gone. `facts` are those [`check`] read, for the first
/// routing; a later one reads them afresh, and judges them again.
async fn route(
    state: &AppState,
    caller: &Caller,
    parsed: &ParsedClaim,
    facts: Option<passerelle_domain::ports::EligibilityFacts>,
    idempotency: &IdempotencyKey,
) -> Result<Result<Written<Claim>, ClaimError>, ApiError> {
    let facts = match facts {
        Some(facts) => facts,
        None => super::eligibility::facts_of(state, &parsed.person, parsed.service_date, true)
            .await?
            .filter(|facts| super::eligibility::may_check(caller, &parsed.person, facts))
            .ok_or(ApiError::NotFound)?,
    };
    let care = Care {
        service_date: parsed.service_date,
        care_level: parsed.care_level,
        lines: &parsed.lines,
    };
    let faults = fact_faults(
        caller,
        &facts,
        parsed.service_date,
        Some(&care),
        parsed.base_adjudication.is_some(),
    );
    if !faults.is_empty() {
        return Err(ApiError::validation(faults));
    }
    let Payers { judged, base, comp } = payers(&facts, &care);
    let status = match (base.is_some(), parsed.base_adjudication.is_some(), comp.is_some()) {
        (true, false, _) => ClaimStatus::AwaitingBase,
        (_, _, true) => ClaimStatus::AwaitingComplementary,
        (true, true, false) => ClaimStatus::Adjudicated,
        (false, _, false) => ClaimStatus::Rejected,
    };
    let mut reasons: Vec<Reason> = Vec::new();
    if status == ClaimStatus::Rejected {
        // The reasons of the coverages the submitter may see, as a check would show them: a
        // scheme forwarding a claim is not told of a mutuelle's arrears or suspension.
        let seen = judged
            .iter()
            .filter(|(c, _, _)| super::eligibility::shows(caller, &c.coverage));
        for (_, _, r) in seen {
            for reason in r {
                merge_reason(&mut reasons, *reason);
            }
        }
        reasons.sort_by_key(|r| r.code);
        if reasons.is_empty() {
            reasons.push(Reason {
                code: ReasonCode::NotCovered,
                until: None,
            });
        }
    }
    let mut lines = parsed.lines.clone();
    if status != ClaimStatus::Rejected {
        for line in &mut lines {
            line.base_rate = base
                .and_then(|b| b.product.as_ref())
                .and_then(|p| p.paying_rate(parsed.care_level, Some(line.category)));
            line.complementary_rate = comp
                .and_then(|m| m.product.as_ref())
                .and_then(|p| p.paying_rate(parsed.care_level, Some(line.category)));
            line.base_adjudicated = parsed
                .base_adjudication
                .as_ref()
                .map(|adj| adj.iter().find(|(n, _)| *n == line.line).map_or(Xof::ZERO, |(_, x)| *x));
        }
    }
    let usage = comp.filter(|_| status != ClaimStatus::Rejected).map(|m| UsageKey {
        coverage: m.coverage.id.clone(),
        plan_year: parsed.service_date.year(),
    });
    let ceiling = comp.and_then(|m| m.product.as_ref()).and_then(|p| p.annual_ceiling_xof);
    let ctx = caller.write_context(state, Some(idempotency.clone()));
    let now = ctx.at;
    let template = Claim {
        id: uuid::Uuid::now_v7().to_string(),
        external_id: parsed.external_id.clone(),
        provider: parsed.provider.clone(),
        submitter: caller.org.to_string(),
        beneficiary: facts.person.clone(),
        service_date: parsed.service_date,
        care_level: parsed.care_level,
        diagnoses: parsed.diagnoses.clone(),
        status,
        base_payer: base
            .filter(|_| status != ClaimStatus::Rejected)
            .map(|b| b.coverage.organization.clone()),
        base_coverage: base
            .filter(|_| status != ClaimStatus::Rejected)
            .map(|b| b.coverage.id.clone()),
        routed_to: comp
            .filter(|_| status != ClaimStatus::Rejected)
            .map(|m| m.coverage.organization.clone()),
        complementary_coverage: usage.as_ref().map(|u| u.coverage.clone()),
        ceiling_xof: ceiling,
        reasons,
        lines,
        totals: Shares::default(),
        settlement: None,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    let seen = comp.map_or(Xof::ZERO, |m| m.complementary_used);
    let price = |used: Xof| -> Result<Claim, ClaimRefusal> {
        let mut claim = template.clone();
        let left = ceiling_left(claim.ceiling_xof, used);
        // Routed on a ceiling that a concurrent claim has used up since the facts were read:
        // this mutuelle would owe nothing, and another payer, or a rejection, may be the right
        // answer. Route again from fresh facts; after the last routing, the caller retries.
        if used != seen && left == Some(Xof::ZERO) {
            return Err(ClaimRefusal::Rerouted);
        }
        claim.totals = price_lines(&mut claim.lines, left).map_err(invalid_amounts)?;
        Ok(claim)
    };
    Ok(state.store.submit_claim(&ctx, usage.as_ref(), seen, &price).await)
}

/// The claim line that entry `p` of an adjudication names, marked taken at once so that a later
/// entry naming it again is a `duplicate` even when this entry is refused for another reason.
/// `exists` says whether the claim has a line of that number. `None`, with the error recorded,
/// when the entry names no line (`required`; a `line` of the wrong type reads as absent, and
/// `fields::merge` keeps only its `invalid_type`), no line of the claim, or one an earlier entry
/// already named. The caller still checks the entry's other fields then, all but the rules that
/// need the line (`exceeds_billed`, `exceeds_proposed`), so that every fault is listed.
fn decided_line(
    exists: impl Fn(u32) -> bool,
    p: &str,
    line: Option<i64>,
    taken: &mut Vec<u32>,
    errors: &mut Vec<FieldError>,
) -> Option<u32> {
    let Some(raw) = line else {
        errors.push(FieldError::required(format!("{p}/line")));
        return None;
    };
    let known = u32::try_from(raw).ok().filter(|n| exists(*n));
    let Some(n) = known else {
        errors.push(FieldError::new(
            format!("{p}/line"),
            "unknown_line",
            "names no line of this claim",
            "ne désigne aucune ligne de cette demande",
        ));
        return None;
    };
    if taken.contains(&n) {
        errors.push(FieldError::new(
            format!("{p}/line"),
            "duplicate",
            "each line at most once",
            "chaque ligne ne doit figurer qu'une fois",
        ));
        return None;
    }
    taken.push(n);
    Some(n)
}

/// An adjudication decides every line of the claim, each once.
fn every_line_once(claim: &Claim, decided: usize, errors: &mut Vec<FieldError>) {
    if errors.is_empty() && decided != claim.lines.len() {
        errors.push(FieldError::new(
            "/lines",
            "every_line_once",
            "decide every line of the claim once",
            "statuez une fois, et une seule, sur chaque ligne de la demande",
        ));
    }
}

/// The `paid_xof` of base entry `p`, checked: `required`, `out_of_range` when negative, and
/// `exceeds_billed` above `billed`, the bill of the line the entry names when that line is
/// known and parsed (unchecked against a bill otherwise). `None` when refused.
fn base_paid(p: &str, paid: Option<i64>, billed: Option<Xof>, rules: &mut Vec<FieldError>) -> Option<Xof> {
    match (paid, billed) {
        (None, _) => rules.push(FieldError::required(format!("{p}/paid_xof"))),
        (Some(v), _) if v < 0 => rules.push(FieldError::new(
            format!("{p}/paid_xof"),
            "out_of_range",
            "must be 0 or more",
            "doit être positif ou nul",
        )),
        (Some(v), Some(b)) if v > b.value() => rules.push(FieldError::new(
            format!("{p}/paid_xof"),
            "exceeds_billed",
            format!(
                "must be at most the line's billed amount, {} XOF",
                grouped_en(b.value())
            ),
            format!(
                "ne doit pas dépasser le montant facturé de la ligne, {} XOF",
                grouped_fr(b.value())
            ),
        )),
        (Some(v), _) => return Some(Xof(v)),
    }
    None
}

fn invalid_amounts(e: impl std::fmt::Display) -> ClaimRefusal {
    ClaimRefusal::Invalid(vec![FieldError::new(
        "/lines",
        "invalid_amounts",
        e.to_string(),
        e.to_string(),
    )])
}

fn party(caller: &Caller, claim: &Claim) -> bool {
    let org = caller.org.as_str();
    caller.reads_everything()
        || claim.provider == org
        || claim.submitter == org
        || claim.base_payer.as_deref() == Some(org)
        || claim.routed_to.as_deref() == Some(org)
}

async fn visible_claim(state: &AppState, caller: &Caller, id: &str) -> Result<Claim, ApiError> {
    match state.store.get_claim(id).await? {
        Some(c) if party(caller, &c) => Ok(c),
        _ => Err(ApiError::NotFound),
    }
}

/// Read a claim (its provider, submitter, base payer, mutuelle; operators and auditors).
///
/// Any organisation kind with `claims:read` may call this, but only the claim's parties (its
/// provider, submitter, base payer and routed mutuelle), operators and auditors see it; 404
/// for anyone else. Its `ETag` is its `version`: a client waiting for the claim to move (an
/// adjudication, a settlement) sends it in `If-None-Match` and gets 304 until it does.
#[utoipa::path(
    get,
    path = "/v1/claims/{id}",
    tag = "claims",
    params(
        ("id" = String, Path, description = "Claim id"),
        ("If-None-Match" = Option<String>, Header, description = "The ETag of a copy the client holds (a list, compared weakly, or `*`): 304 without a body when the claim has not changed since"),
        ("If-Match" = Option<String>, Header, description = "Read only if the claim is at this version (compared strongly): 412 otherwise"),
    ),
    responses(
        (status = 200, description = "The claim", body = ClaimView, headers(("ETag" = String, description = "The claim's version, quoted"))),
        (status = 304, description = "`If-None-Match` names the current version: the client's copy is current. No body", headers(("ETag" = String, description = "The current version, quoted"))),
        (status = 404, description = "No such claim, or not yours", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 412, description = "`If-Match` names another version", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["claims:read"]))
)]
pub async fn get_claim(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadClaims>,
    Path(id): Path<String>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let claim = read_visible_claim(&state, &auth.caller, &id).await?;
    let version = claim.version;
    if let Some(not_modified) = super::products::read_preconditions(&headers, version)? {
        return Ok(not_modified);
    }
    let mut response = Json(ClaimView::from(claim)).into_response();
    response
        .headers_mut()
        .insert(axum::http::header::ETAG, super::products::etag(version));
    Ok(response)
}

/// A claim the caller takes part in (404 otherwise), its read audited: for `/v1` and FHIR alike.
pub(crate) async fn read_visible_claim(state: &AppState, caller: &Caller, id: &str) -> Result<Claim, ApiError> {
    let claim = visible_claim(state, caller, id).await?;
    crate::routes::audit::record_read(state, caller, "claim", id).await?;
    Ok(claim)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClaimQuery {
    /// Only claims in this state: `awaiting_base`, `awaiting_complementary`, `adjudicated`,
    /// `settled`, `rejected` or `cancelled` (another value is 422 on `/query/status`).
    #[param(value_type = Option<ClaimStatusFilter>, inline)]
    pub status: Option<String>,
    /// RFC 3339 instant or `YYYY-MM-DD` (00:00 UTC): claims changed at or after it.
    #[param(value_type = Option<super::audit::Since>, inline)]
    pub since: Option<String>,
    /// Only the claim a provider submitted under this `external_id` (its own reference: found
    /// again after a lost answer, once the `Idempotency-Key` is gone), compared as the claim's
    /// is kept (trimmed, in Unicode's NFKC form, case counting); for other callers, each
    /// provider's claim of that reference they take part in. 1–100 characters in that form (as a
    /// submission counts them) or as sent.
    #[param(min_length = 1, max_length = 100)]
    pub external_id: Option<String>,
}

/// A string among `values`: a query filter's closed set, taken from the domain's own list.
pub(crate) fn string_enum(values: &[&str]) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    let object = ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .build();
    utoipa::openapi::RefOr::T(Schema::Object(object))
}

/// The `status` filter: `ClaimStatus::ALL`, which `ClaimStatus::parse` reads. Schema only
/// (inlined).
pub struct ClaimStatusFilter;

impl utoipa::PartialSchema for ClaimStatusFilter {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        string_enum(&ClaimStatus::ALL.map(ClaimStatus::as_str))
    }
}

impl ToSchema for ClaimStatusFilter {}

/// List the claims you take part in, in creation order.
///
/// Claims in which your organisation is the provider, submitter, base payer or routed mutuelle;
/// operators and auditors see every claim. Filter by `status` and by `since` (claims changed at
/// or after it), e.g. a mutuelle polling `status=awaiting_complementary`. A change is stamped
/// when its request is received and shows once it commits, up to the request timeout (30 s by
/// default) later: a poller passes as `since` the time of its previous poll minus 35 s, and
/// skips the claims it has already seen in the same `status`. A page ends before the claim
/// that would take it past 2 MiB of stored claims (claims of hundreds of lines come fewer than
/// `limit` to a page): follow `next_cursor`.
#[utoipa::path(
    get,
    path = "/v1/claims",
    tag = "claims",
    params(PageQuery, ClaimQuery),
    responses((status = 200, description = "A page of claims", body = ListOf<ClaimView>)),
    security(("bearer" = ["claims:read"]))
)]
pub async fn list_claims(
    State(state): State<AppState>,
    auth: Authorized<perm::ReadClaims>,
    AppQuery(page): AppQuery<PageQuery>,
    AppQuery(query): AppQuery<ClaimQuery>,
) -> Result<Json<ListOf<ClaimView>>, ApiError> {
    // Every broken rule of the query at once (API.md §4).
    let mut errors = Vec::new();
    let page = match page.parse() {
        Ok(page) => Some(page),
        Err(e) => {
            absorb(e, &mut errors)?;
            None
        }
    };
    let status = query.status.as_deref().and_then(|raw| {
        let status = ClaimStatus::parse(raw);
        if status.is_none() {
            let allowed = ClaimStatus::ALL.map(ClaimStatus::as_str).join(", ");
            errors.push(FieldError::new(
                "/query/status",
                "unknown_value",
                format!("must be one of {allowed}"),
                format!("doit être l'une des valeurs {allowed}"),
            ));
        }
        status
    });
    let since = match super::audit::parse_since(query.since.as_deref()) {
        Ok(since) => since,
        Err(e) => {
            absorb(e, &mut errors)?;
            None
        }
    };
    let external_id = query.external_id.as_deref().map(str::trim);
    // Judged as a submission judges it, in the form it is kept and compared in (100 `É` written
    // with combining accents are 200 characters as sent, 100 kept), or as sent, the form a claim
    // stored before references were kept in one form holds: a reference either took is searched.
    let kept = external_id.map(passerelle_domain::text::reference_form);
    if let (Some(sent), Some(kept)) = (external_id, &kept) {
        let judge = |form: &str| crate::fields::reference_error("/query/external_id", form);
        errors.extend(judge(kept).and(judge(sent)));
    }
    let (Some(page), true) = (page, errors.is_empty()) else {
        return Err(ApiError::validation(errors));
    };
    let caller = &auth.caller;
    let mut filter = ClaimFilter {
        party: (!caller.reads_everything()).then(|| caller.org.to_string()),
        status,
        since,
        external_id: kept.clone(),
    };
    let mut result = state.store.list_claims(&filter, &page).await?;
    // A claim stored before references were kept in one form holds the form it was sent in:
    // found by that form too. Each form names at most one claim per provider.
    if let (Some(sent), Some(kept)) = (external_id, &kept) {
        if sent != kept {
            filter.external_id = Some(sent.to_owned());
            let older = state.store.list_claims(&filter, &page).await?;
            let more = result.next_key.is_some() || older.next_key.is_some();
            result.items.extend(older.items);
            result.items.sort_by(|a, b| a.id.cmp(&b.id));
            result.items.dedup_by(|a, b| a.id == b.id);
            let limit = page.limit as usize;
            let cut = result.items.len() > limit;
            result.items.truncate(limit);
            result.next_key = (more || cut)
                .then(|| result.items.last().map(|c| c.id.clone()))
                .flatten();
        }
    }
    crate::routes::audit::record_read(&state, caller, "claim", "*").await?;
    Ok(Json(ListOf::from_page(result, ClaimView::from)))
}

/// Adds a validation error's faults to `errors`; any other error is handed back.
fn absorb(error: ApiError, errors: &mut Vec<FieldError>) -> Result<(), ApiError> {
    match error {
        ApiError::Validation(mut e) => {
            errors.append(&mut e);
            Ok(())
        }
        other => Err(other),
    }
}

fn role_of(caller: &Caller, claim: &Claim, transition: Transition) -> Role {
    let org = caller.org.as_str();
    match transition {
        Transition::BaseAdjudicate if claim.base_payer.as_deref() == Some(org) => Role::BasePayer,
        Transition::Adjudicate | Transition::Settle if claim.routed_to.as_deref() == Some(org) => Role::RoutedMutuelle,
        Transition::Cancel if claim.submitter == org => Role::Submitter,
        // Any role that is not the one this move needs.
        Transition::Cancel => Role::BasePayer,
        _ => Role::Submitter,
    }
}

fn step(claim: &Claim, transition: Transition, role: Role) -> Result<ClaimStatus, ClaimRefusal> {
    next_status(claim.status, transition, role, claim.routed_to.is_some()).map_err(|e| match e {
        TransitionError::NotAllowed => ClaimRefusal::NotAllowed,
        TransitionError::IllegalState(s) => ClaimRefusal::IllegalState(s),
    })
}

/// Adjudicate a claim's base share (its base scheme).
///
/// The scheme that is the claim's `base_payer`, with `claims:submit`, sends what it pays for
/// every line (403 for another party, 404 for a non-party). Its amounts replace the base shares
/// and the complementary shares are recomputed on the new remainders, within the annual ceiling.
/// Only from `awaiting_base` (409 otherwise); the claim then awaits its mutuelle, or is
/// `adjudicated` when none is routed. Subscribers receive `claim.base_adjudicated`. Not replayed:
/// a retry after a success is 409, so a client without an answer `GET`s the claim first.
#[utoipa::path(
    post,
    path = "/v1/claims/{id}/base-adjudication",
    tag = "claims",
    request_body = BaseAdjudicationWrite,
    params(("id" = String, Path, description = "Claim id")),
    responses(
        (status = 200, description = "The repriced claim", body = ClaimView,
         example = json!({"id": "01938b20-4e5f-7a61-8b72-9c8d7e6f5a4b", "external_id": "CMS-2026-000187", "provider": "cms-tsevie", "submitter": "cms-tsevie", "beneficiary": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f", "service_date": "2026-11-27", "care_level": "health_center", "diagnoses": ["B54"], "status": "awaiting_complementary", "base_payer": "tg-inam", "routed_to": "mut-tsevie", "reasons": [], "lines": [{"line": 1, "code": "CONS-GEN", "category": "consultation", "description": "Consultation de médecine générale", "quantity": 1, "unit_price_xof": 5000, "billed_xof": 5000, "base_xof": 4000, "complementary_xof": 1000, "patient_xof": 0}, {"line": 2, "code": "LAB-NFS", "category": "laboratory", "description": "Numération formule sanguine", "quantity": 1, "unit_price_xof": 3500, "billed_xof": 3500, "base_xof": 2500, "complementary_xof": 1000, "patient_xof": 0}, {"line": 3, "code": "PARA-500", "category": "pharmacy", "description": "Paracétamol 500 mg, boîte de 16", "quantity": 2, "unit_price_xof": 750, "billed_xof": 1500, "base_xof": 1200, "complementary_xof": 300, "patient_xof": 0}], "totals": {"billed_xof": 10000, "base_xof": 7700, "complementary_xof": 2300, "patient_xof": 0}, "version": 2})),
        (status = 404, description = "No such claim, or not yours", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The claim is not `awaiting_base`", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["claims:submit"]))
)]
pub async fn base_adjudication(
    State(state): State<AppState>,
    auth: Authorized<perm::BaseAdjudicate>,
    Path(id): Path<String>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<Json<ClaimView>, ApiError> {
    let caller = &auth.caller;
    let current = visible_claim(&state, caller, &id).await?;
    let role = role_of(caller, &current, Transition::BaseAdjudicate);
    let mut f = Fields::new(&body);
    let entries = f.opt_objects("lines", |l| (l.opt_i64("line"), l.opt_i64("paid_xof")));
    let mut errors = f.finish();
    if entries.is_none() && errors.is_empty() {
        errors.push(FieldError::required("/lines"));
    }
    let entries = entries.unwrap_or_default();
    let change = |claim: &Claim, used_by_others: Xof| -> Result<Claim, ClaimRefusal> {
        let status = step(claim, Transition::BaseAdjudicate, role)?;
        let mut rules = Vec::new();
        let mut next = claim.clone();
        let mut taken = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let Some((line, paid)) = entry else { continue };
            let p = format!("/lines/{i}");
            let exists = |n: u32| claim.lines.iter().any(|l| l.line == n);
            let n = decided_line(exists, &p, *line, &mut taken, &mut rules);
            let mut l = n.and_then(|n| next.lines.iter_mut().find(|l| l.line == n));
            let billed = l.as_ref().map(|l| l.shares.billed_xof);
            if let (Some(l), Some(paid)) = (l.as_mut(), base_paid(&p, *paid, billed, &mut rules)) {
                l.base_adjudicated = Some(paid);
            }
        }
        // A field of the wrong type was read as absent: its `invalid_type` alone stands.
        let mut errors = crate::fields::merge(errors.clone(), rules);
        every_line_once(claim, taken.len(), &mut errors);
        if !errors.is_empty() {
            return Err(ClaimRefusal::Invalid(errors));
        }
        next.totals =
            price_lines(&mut next.lines, ceiling_left(next.ceiling_xof, used_by_others)).map_err(invalid_amounts)?;
        next.status = status;
        Ok(next)
    };
    let ctx = caller.write_context(&state, None);
    let claim = state
        .store
        .change_claim(&ctx, &id, "claim.base_adjudicated", &change)
        .await
        .map_err(refusal)?;
    Ok(Json(claim.into()))
}

/// The routed mutuelle's decision on every line: accept, reject (with a reason) or reduce.
///
/// The mutuelle the claim is `routed_to`, with `claims:adjudicate` (403 for other kinds and
/// other parties, 404 for non-parties), decides every line once. An adjudication may lower the
/// complementary share, never raise it: what it removes moves to the patient's share and frees
/// annual ceiling. Only from `awaiting_complementary` (409 otherwise). The claim becomes
/// `adjudicated`, or `rejected` when every line is rejected (the mutuelle owes nothing; a base
/// share the scheme adjudicated stands). Subscribers receive `claim.adjudicated`. Not replayed: a
/// retry after a success is 409, so a client without an answer `GET`s the claim first.
#[utoipa::path(
    post,
    path = "/v1/claims/{id}/adjudication",
    tag = "claims",
    request_body = AdjudicationWrite,
    params(("id" = String, Path, description = "Claim id")),
    responses(
        (status = 200, description = "The adjudicated claim (`rejected` when every line is)", body = ClaimView,
         example = json!({"id": "01938b20-4e5f-7a61-8b72-9c8d7e6f5a4b", "external_id": "CMS-2026-000187", "provider": "cms-tsevie", "submitter": "cms-tsevie", "beneficiary": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f", "service_date": "2026-11-27", "care_level": "health_center", "diagnoses": ["B54"], "status": "adjudicated", "base_payer": "tg-inam", "routed_to": "mut-tsevie", "reasons": [], "lines": [{"line": 1, "code": "CONS-GEN", "category": "consultation", "description": "Consultation de médecine générale", "quantity": 1, "unit_price_xof": 5000, "billed_xof": 5000, "base_xof": 4000, "complementary_xof": 1000, "patient_xof": 0, "decision": "accept"}, {"line": 2, "code": "LAB-NFS", "category": "laboratory", "description": "Numération formule sanguine", "quantity": 1, "unit_price_xof": 3500, "billed_xof": 3500, "base_xof": 2500, "complementary_xof": 800, "patient_xof": 200, "decision": "reduce", "reason_code": "TARIFF_EXCEEDED"}, {"line": 3, "code": "PARA-500", "category": "pharmacy", "description": "Paracétamol 500 mg, boîte de 16", "quantity": 2, "unit_price_xof": 750, "billed_xof": 1500, "base_xof": 1200, "complementary_xof": 0, "patient_xof": 300, "decision": "reject", "reason_code": "NOT_JUSTIFIED"}], "totals": {"billed_xof": 10000, "base_xof": 7700, "complementary_xof": 1800, "patient_xof": 500}, "version": 3})),
        (status = 404, description = "No such claim, or not yours", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "The claim is not `awaiting_complementary`", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["claims:adjudicate"]))
)]
pub async fn adjudication(
    State(state): State<AppState>,
    auth: Authorized<perm::Adjudicate>,
    Path(id): Path<String>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<Json<ClaimView>, ApiError> {
    let caller = &auth.caller;
    let current = visible_claim(&state, caller, &id).await?;
    let role = role_of(caller, &current, Transition::Adjudicate);
    let mut f = Fields::new(&body);
    let entries = f.opt_objects("lines", |l| {
        (
            l.opt_i64("line"),
            LineDecisionDraft {
                decision: l.opt_str("decision"),
                approved_xof: l.opt_i64("approved_xof"),
                reason_code: l.opt_str("reason_code"),
            },
        )
    });
    let mut errors = f.finish();
    if entries.is_none() && errors.is_empty() {
        errors.push(FieldError::required("/lines"));
    }
    let entries = entries.unwrap_or_default();
    let change = |claim: &Claim, _used_by_others: Xof| -> Result<Claim, ClaimRefusal> {
        step(claim, Transition::Adjudicate, role)?;
        let mut rules = Vec::new();
        let mut decisions = Vec::new();
        let mut taken = Vec::new();
        for (i, entry) in entries.iter().enumerate() {
            let Some((line, draft)) = entry else { continue };
            let p = format!("/lines/{i}");
            let exists = |n: u32| claim.lines.iter().any(|l| l.line == n);
            let n = decided_line(exists, &p, *line, &mut taken, &mut rules);
            // The decision's own rules hold whatever the line; `exceeds_proposed` needs it.
            match draft.clone().validate(&p) {
                Ok(d) => {
                    let Some(n) = n else { continue };
                    if let passerelle_domain::coordination::Adjudication::Reduce { approved_xof } = d.adjudication {
                        let proposed = claim
                            .lines
                            .iter()
                            .find(|l| l.line == n)
                            .map_or(Xof::ZERO, |l| l.shares.complementary_xof);
                        if approved_xof > proposed {
                            rules.push(FieldError::new(
                                format!("{p}/approved_xof"),
                                "exceeds_proposed",
                                format!(
                                    "must be at most the proposed share, {} XOF",
                                    grouped_en(proposed.value())
                                ),
                                format!(
                                    "ne doit pas dépasser la part proposée, {} XOF",
                                    grouped_fr(proposed.value())
                                ),
                            ));
                            continue;
                        }
                    }
                    decisions.push((n, d.adjudication, d.reason_code));
                }
                Err(mut e) => rules.append(&mut e),
            }
        }
        // A field of the wrong type was read as absent: its `invalid_type` alone stands.
        let mut errors = crate::fields::merge(errors.clone(), rules);
        every_line_once(claim, taken.len(), &mut errors);
        if !errors.is_empty() {
            return Err(ClaimRefusal::Invalid(errors));
        }
        let mut next = claim.clone();
        next.totals = apply_decisions(&mut next.lines, &decisions).map_err(invalid_amounts)?;
        let all_rejected = decisions
            .iter()
            .all(|(_, a, _)| matches!(a, passerelle_domain::coordination::Adjudication::Reject));
        next.status = if all_rejected {
            ClaimStatus::Rejected
        } else {
            ClaimStatus::Adjudicated
        };
        Ok(next)
    };
    let ctx = caller.write_context(&state, None);
    let claim = state
        .store
        .change_claim(&ctx, &id, "claim.adjudicated", &change)
        .await
        .map_err(refusal)?;
    Ok(Json(claim.into()))
}

/// Cancel a claim awaiting adjudication (its submitter); its complementary share frees ceiling.
///
/// Only the organisation that submitted the claim (a provider, or the scheme that forwarded
/// it), with `claims:submit`: 403 for the claim's other parties, 404 for anyone else. Only from
/// `awaiting_base` or `awaiting_complementary` (409 otherwise). A cancelled claim no longer
/// counts towards the annual ceiling. Subscribers receive `claim.cancelled`.
#[utoipa::path(
    post,
    path = "/v1/claims/{id}/cancel",
    tag = "claims",
    params(("id" = String, Path, description = "Claim id")),
    responses(
        (status = 200, description = "The cancelled claim", body = ClaimView,
         example = json!({"id": "01938b20-4e5f-7a61-8b72-9c8d7e6f5a4b", "external_id": "CMS-2026-000187", "provider": "cms-tsevie", "submitter": "cms-tsevie", "beneficiary": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f", "service_date": "2026-11-27", "care_level": "health_center", "diagnoses": ["B54"], "status": "cancelled", "base_payer": "tg-inam", "routed_to": "mut-tsevie", "reasons": [], "lines": [{"line": 1, "code": "CONS-GEN", "category": "consultation", "description": "Consultation de médecine générale", "quantity": 1, "unit_price_xof": 5000, "billed_xof": 5000, "base_xof": 4000, "complementary_xof": 1000, "patient_xof": 0}, {"line": 2, "code": "LAB-NFS", "category": "laboratory", "description": "Numération formule sanguine", "quantity": 1, "unit_price_xof": 3500, "billed_xof": 3500, "base_xof": 2800, "complementary_xof": 700, "patient_xof": 0}, {"line": 3, "code": "PARA-500", "category": "pharmacy", "description": "Paracétamol 500 mg, boîte de 16", "quantity": 2, "unit_price_xof": 750, "billed_xof": 1500, "base_xof": 1200, "complementary_xof": 300, "patient_xof": 0}], "totals": {"billed_xof": 10000, "base_xof": 8000, "complementary_xof": 2000, "patient_xof": 0}, "version": 2})),
        (status = 404, description = "No such claim, or not yours", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "Already adjudicated, settled, rejected or cancelled", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["claims:submit"]))
)]
pub async fn cancel_claim(
    State(state): State<AppState>,
    auth: Authorized<perm::CancelClaim>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = &auth.caller;
    let current = visible_claim(&state, caller, &id).await?;
    let role = role_of(caller, &current, Transition::Cancel);
    let change = |claim: &Claim, _used: Xof| -> Result<Claim, ClaimRefusal> {
        let mut next = claim.clone();
        next.status = step(claim, Transition::Cancel, role)?;
        Ok(next)
    };
    let ctx = caller.write_context(&state, None);
    let claim = state
        .store
        .change_claim(&ctx, &id, "claim.cancelled", &change)
        .await
        .map_err(refusal)?;
    Ok((StatusCode::OK, Json(ClaimView::from(claim))).into_response())
}

#[cfg(test)]
mod tests {
    use passerelle_domain::coordination::AdjudicationReason;

    /// The documented reason codes are the domain's own, so the documentation-only enum cannot
    /// drift from what the handler accepts.
    #[test]
    fn documented_reason_codes_are_the_domains() {
        let doc = serde_json::to_value(crate::openapi::document()).unwrap();
        let documented: Vec<&str> = doc["components"]["schemas"]["AdjudicationReasonWrite"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let domain: Vec<&str> = AdjudicationReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(documented, domain);
    }
}
