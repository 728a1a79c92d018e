//! `POST /v1/eligibility-checks`: is this person covered today, by whom, at what rate, and what
//! will the patient pay? The hot path of the service.

use axum::extract::State;
use axum::Json;
use chrono::{Months, NaiveDate};
use passerelle_domain::beneficiary::NationalIdRules;
use passerelle_domain::coordination::{choose_base, choose_complementary, estimate};
use passerelle_domain::coverage::Coverage;
use passerelle_domain::eligibility::{evaluate_with_later_versions, BirthDatePrecision, CoverageEligibility};
use passerelle_domain::error::{FieldError, StoreError};
use passerelle_domain::money::{grouped_en, grouped_fr};
use passerelle_domain::money::{Xof, MAX_XOF};
use passerelle_domain::organization::OrgKind;
use passerelle_domain::ports::{EligibilityFacts, PersonKey, AMBIGUOUS_PERSON};
use passerelle_domain::product::{CareLevel, Category};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{perm, AppJson, Authorized, Caller};
use crate::fields::Fields;
use crate::problem::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(check_eligibility))
}

/// Who the check is about: exactly one of `id`, `national_id`, or `organization` +
/// `member_number` (another combination is 422 `ambiguous_person` on `/beneficiary`).
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"national_id": {"country": "TG", "type": "NIU", "value": "1234 5678 9012"}}))]
pub struct PersonSelector {
    /// The beneficiary id.
    pub id: Option<String>,
    /// The person's national id, normalised before the search (spaces and dashes removed).
    pub national_id: Option<super::registry::NationalIdWrite>,
    /// The mutuelle or scheme whose member number follows; with `member_number`.
    pub organization: Option<String>,
    /// A member number in `organization`: the household's (its principal) or a dependant's own,
    /// in any case (`tsv-0042` finds `TSV-0042`).
    pub member_number: Option<String>,
    /// With `organization` and `member_number` only: the birth date of the person meant among
    /// those covered under that number, `YYYY-MM-DD` or `YYYY` (a year on either side compares
    /// years). A dependant with no number of their own carries the household's, which alone
    /// names the principal: this names them. No one so born is 404; several (twins without
    /// numbers of their own) 422 `ambiguous_person` here: name them by `id` or `national_id`.
    #[schema(value_type = Option<String>, example = "2019-03-14")]
    pub birth_date: Option<String>,
}

/// The body of `POST /v1/eligibility-checks`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"beneficiary": {"organization": "mut-tsevie", "member_number": "TSV-0042"},
    "service_date": "2026-11-30", "care_level": "health_center", "category": "consultation", "amount_xof": 10000}))]
pub struct EligibilityRequest {
    /// Who: `{id}`, `{national_id}` or `{organization, member_number}`. Unknown, or not visible
    /// to you, is 404.
    pub beneficiary: PersonSelector,
    /// Default today; from 1900-01-01 to one year ahead.
    pub service_date: Option<NaiveDate>,
    /// `health_post`, `health_center`, `hospital` or `university_hospital`.
    pub care_level: String,
    /// `consultation`, `hospitalization`, `pharmacy`, `laboratory`, `imaging`, `maternity`,
    /// `surgery`, `dental`, `optical` or `emergency`.
    pub category: Option<String>,
    /// 0 to 10^12: the amount billed, to split into an `estimate` of each payer's share.
    // `read_check`: `0..=MAX_XOF`.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub amount_xof: Option<i64>,
}

/// Why a coverage does not pay for this service.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"code": "WAITING_PERIOD", "message": "le délai de carence (période d'observation) n'est pas écoulé", "until": "2026-12-15"}))]
pub struct ReasonView {
    /// `NOT_STARTED`, `WAITING_PERIOD`, `CONTRIBUTIONS_IN_ARREARS`, `SUSPENDED`, `TERMINATED`,
    /// `ENDED`, `NOT_COVERED`, `EXCLUDED_CATEGORY`, `CEILING_EXHAUSTED`, `DEPENDANT_AGE_LIMIT`.
    /// A dependant's coverage is `SUSPENDED`, `TERMINATED` or `ENDED` with the principal's too.
    /// `NOT_STARTED` holds before the coverage's start and before the person's birth.
    pub code: String,
    /// The reason for people, in the response's language (`Accept-Language`).
    pub message: String,
    /// The first day on which the reason no longer holds; absent when no such day is known, or when
    /// the coverage never reaches it (it, or its household, ends first, it was terminated without an end date, or the child
    /// is then past the age limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub until: Option<NaiveDate>,
}

/// The answer for one of the person's coverages.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"coverage": "01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70", "organization": "mut-tsevie", "layer": "complementary",
    "status": "eligible", "rate_bp": 10000, "reasons": [], "remaining_ceiling_xof": 140000}))]
pub struct CoverageEligibilityView {
    /// The coverage id.
    pub coverage: String,
    /// The mutuelle or scheme that holds it.
    pub organization: String,
    /// `base`, `complementary` or `primary`.
    pub layer: String,
    /// `eligible` or `not_eligible`.
    pub status: String,
    /// The rate of the first matching rule; absent when no rule matches, the category is
    /// excluded, or the rate is 0.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub rate_bp: Option<u32>,
    /// Every reason it does not pay, in the order of the codes above; empty when `eligible`.
    pub reasons: Vec<ReasonView>,
    /// What the annual ceiling still allows this plan year (the service date's calendar year);
    /// absent without a ceiling, for `base` coverages, and before the product's first version
    /// (no version, so no ceiling, is in force on the service date).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub remaining_ceiling_xof: Option<i64>,
}

/// How `amount_xof` would be shared (API.md §6): `base_xof + complementary_xof + patient_xof =
/// billed_xof`. An estimate; the claim is priced when submitted.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"billed_xof": 10000, "base_xof": 8000, "complementary_xof": 2000, "patient_xof": 0}))]
pub struct EstimateView {
    /// `amount_xof`.
    pub billed_xof: i64,
    /// What the eligible base coverage pays: `floor(billed × rate_bp / 10000)`; 0 without one.
    pub base_xof: i64,
    /// What the eligible complementary or primary coverage pays on the remainder, within its
    /// remaining ceiling; 0 without one.
    pub complementary_xof: i64,
    /// What is left to the patient.
    pub patient_xof: i64,
}

/// The answer to an eligibility check.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"beneficiary": "01937f0e-6c2a-7d3b-9e0f-1a2b3c4d5e6f", "service_date": "2026-11-30", "eligible": true,
    "coverages": [
        {"coverage": "01937f0e-9f5d-7a6e-8b32-4d5e6f708192", "organization": "tg-inam", "layer": "base", "status": "eligible", "rate_bp": 8000, "reasons": []},
        {"coverage": "01937f0e-7d3b-7e4c-8f10-2b3c4d5e6f70", "organization": "mut-tsevie", "layer": "complementary", "status": "eligible", "rate_bp": 10000, "reasons": [], "remaining_ceiling_xof": 140000}
    ],
    "estimate": {"billed_xof": 10000, "base_xof": 8000, "complementary_xof": 2000, "patient_xof": 0}}))]
pub struct EligibilityView {
    /// The person's beneficiary id.
    pub beneficiary: String,
    /// The date checked (today when not given).
    pub service_date: NaiveDate,
    /// True when at least one of the listed coverages is eligible for this service.
    pub eligible: bool,
    /// The person's coverages, each with its own answer: every one of them for a provider;
    /// for a mutuelle or a scheme, those it holds and the base affiliations.
    pub coverages: Vec<CoverageEligibilityView>,
    /// The split of `amount_xof`, when given (API.md §6), for a provider: among all of the
    /// person's payers, as a claim would be split. A mutuelle or a scheme gets none, since the
    /// split involves payers it may not see.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub estimate: Option<EstimateView>,
}

/// A check as read from a request, whichever form (`/v1` or FHIR) it came in.
pub(crate) struct Check {
    pub person: PersonKey,
    pub service_date: NaiveDate,
    pub care_level: CareLevel,
    pub category: Option<Category>,
    pub amount: Option<Xof>,
}

/// The answer, and which coverages the estimate's base and complementary shares came from.
pub(crate) struct Answer {
    pub view: EligibilityView,
    pub base: Option<String>,
    pub complementary: Option<String>,
}

fn unknown(field: &str, allowed: &[&str]) -> FieldError {
    FieldError::new(
        field,
        "unknown_value",
        format!("must be one of {}", allowed.join(", ")),
        format!("doit être l'une des valeurs {}", allowed.join(", ")),
    )
}

pub(crate) fn read_person(
    body: Option<&Map<String, Value>>,
    rules: &NationalIdRules,
    errors: &mut Vec<FieldError>,
) -> Option<PersonKey> {
    let Some(obj) = body else {
        errors.push(FieldError::required("/beneficiary"));
        return None;
    };
    let mut f = Fields::nested(obj, "/beneficiary");
    let id = f.opt_str("id");
    let nid = f.opt_object("national_id").map(|n| {
        let mut g = Fields::nested(n, "/beneficiary/national_id");
        let parts = (g.str("country"), g.str("type"), g.str("value"));
        errors.extend(g.finish());
        parts
    });
    let organization = f.opt_str("organization");
    let member_number = f.opt_str("member_number");
    let birth_date = f.opt_str("birth_date");
    errors.extend(f.finish());
    // The forms are counted as sent, whether or not their values read: an id of the wrong type
    // is that id's error alone, not also an ambiguity.
    let sent = |name: &str| obj.get(name).is_some_and(|v| !v.is_null());
    let forms = usize::from(sent("id"))
        + usize::from(sent("national_id"))
        + usize::from(sent("organization") || sent("member_number"));
    if forms != 1 {
        errors.push(FieldError::new(
            "/beneficiary",
            "ambiguous_person",
            "give exactly one of id, national_id, or organization with member_number",
            "indiquez exactement un critère parmi id, national_id ou organization avec member_number",
        ));
        return None;
    }
    // Blank once trimmed: a text that names no one is a missing one, not an unknown person.
    let mut blank = false;
    for (name, value) in [
        ("id", &id),
        ("organization", &organization),
        ("member_number", &member_number),
    ] {
        if value.as_deref().is_some_and(str::is_empty) {
            errors.push(FieldError::required(format!("/beneficiary/{name}")));
            blank = true;
        }
    }
    if blank {
        return None;
    }
    let born = match birth_date {
        None => None,
        Some(_) if !(sent("organization") || sent("member_number")) => {
            errors.push(FieldError::new(
                "/beneficiary/birth_date",
                "not_allowed",
                "tells apart the people of one member number: only with organization and member_number",
                "distingue les personnes d'un même numéro d'adhérent : seulement avec organization et member_number",
            ));
            return None;
        }
        Some(raw) => match read_born(&raw) {
            Some(born) => Some(born),
            None => {
                errors.push(FieldError::new(
                    "/beneficiary/birth_date",
                    "invalid_date",
                    "must be a calendar date YYYY-MM-DD, or YYYY when only the year is known",
                    "doit être une date valide au format AAAA-MM-JJ, ou AAAA si seule l'année est connue",
                ));
                return None;
            }
        },
    };
    if let Some(id) = id {
        return Some(PersonKey::Id(id));
    }
    if let Some((Some(country), Some(id_type), Some(value))) = nid {
        return match rules.parse_object(&country, &id_type, &value, "/beneficiary/national_id") {
            Ok(n) => Some(PersonKey::NationalId(n)),
            Err(e) => {
                errors.push(e);
                None
            }
        };
    }
    match (organization, member_number) {
        // Trimmed already (`Fields::opt_str`), as registration stores member numbers.
        (Some(organization), Some(member_number)) => Some(match born {
            None => PersonKey::Member {
                organization,
                member_number,
            },
            Some((birth_date, precision)) => PersonKey::MemberBorn {
                organization,
                member_number,
                birth_date,
                precision,
            },
        }),
        // Missing only when not sent: one of the wrong type has its `invalid_type` already.
        (None, Some(_)) => {
            if !sent("organization") {
                errors.push(FieldError::required("/beneficiary/organization"));
            }
            None
        }
        (Some(_), None) => {
            if !sent("member_number") {
                errors.push(FieldError::required("/beneficiary/member_number"));
            }
            None
        }
        // Both sent is a mistyped one (its `invalid_type` is listed); one sent mistyped still
        // leaves the other missing.
        _ => {
            for (name, other) in [("organization", "member_number"), ("member_number", "organization")] {
                if sent(name) && !sent(other) {
                    errors.push(FieldError::required(format!("/beneficiary/{other}")));
                }
            }
            None
        }
    }
}

/// A birth date as a front desk gives it: `YYYY-MM-DD`, or `YYYY` when only the year is known.
fn read_born(raw: &str) -> Option<(NaiveDate, BirthDatePrecision)> {
    if raw.len() == 4 && raw.bytes().all(|b| b.is_ascii_digit()) {
        let year = raw.parse().ok()?;
        return NaiveDate::from_ymd_opt(year, 1, 1).map(|d| (d, BirthDatePrecision::Year));
    }
    passerelle_domain::dates::parse(raw).map(|d| (d, BirthDatePrecision::Day))
}

pub(crate) fn read_check(
    body: &Map<String, Value>,
    today: NaiveDate,
    rules: &NationalIdRules,
) -> Result<Check, ApiError> {
    let mut f = Fields::new(body);
    let mut errors = Vec::new();
    let person_obj = f.opt_object("beneficiary");
    let service_date = f.opt_str("service_date");
    let care_level = f.str("care_level");
    let category = f.opt_str("category");
    let amount = f.opt_i64("amount_xof");
    let amount_given = body.get("amount_xof").is_some_and(|v| !v.is_null());
    errors.extend(f.finish());
    let beneficiary_present = body.get("beneficiary").is_some_and(|v| !v.is_null());
    let person = if beneficiary_present {
        person_obj.and_then(|o| read_person(Some(o), rules, &mut errors))
    } else {
        read_person(None, rules, &mut errors)
    };
    let earliest = NaiveDate::from_ymd_opt(1900, 1, 1).unwrap_or(today);
    let latest = today.checked_add_months(Months::new(12)).unwrap_or(today);
    let service_date = match service_date {
        None => Some(today),
        Some(raw) => match passerelle_domain::dates::parse(&raw).ok_or(()) {
            Ok(d) if d >= earliest && d <= latest => Some(d),
            Ok(_) => {
                errors.push(FieldError::new(
                    "/service_date",
                    "out_of_range",
                    format!("must be between 1900-01-01 and {latest}"),
                    format!("doit être comprise entre le 1900-01-01 et le {latest}"),
                ));
                None
            }
            Err(_) => {
                errors.push(FieldError::new(
                    "/service_date",
                    "invalid_date",
                    "must be YYYY-MM-DD",
                    "doit être au format AAAA-MM-JJ",
                ));
                None
            }
        },
    };
    let care_level = care_level.and_then(|c| {
        CareLevel::parse(&c).or_else(|| {
            errors.push(unknown("/care_level", &CareLevel::ALL.map(CareLevel::as_str)));
            None
        })
    });
    let category = match category {
        None => Some(None),
        Some(c) => match Category::parse(&c) {
            Some(c) => Some(Some(c)),
            None => {
                errors.push(unknown("/category", &Category::ALL.map(Category::as_str)));
                None
            }
        },
    };
    let amount = match amount {
        Some(a) if (0..=MAX_XOF).contains(&a) => Some(Xof(a)),
        Some(_) => {
            errors.push(FieldError::new(
                "/amount_xof",
                "out_of_range",
                format!("must be from 0 to {} XOF", grouped_en(MAX_XOF)),
                format!("doit être de 0 à {} XOF", grouped_fr(MAX_XOF)),
            ));
            None
        }
        None => None,
    };
    match (person, service_date, care_level, category) {
        (Some(person), Some(service_date), Some(care_level), Some(category)) if errors.is_empty() => {
            let _ = amount_given;
            Ok(Check {
                person,
                service_date,
                care_level,
                category,
                amount,
            })
        }
        _ => Err(ApiError::validation(errors)),
    }
}

/// Whether the answer lists this coverage: all of them for a provider's front desk; for a
/// mutuelle or a scheme, its own and the base affiliations, which every payer coordinates with
/// (a mutuelle's share is taken from what the scheme leaves). Another mutuelle's arrears,
/// suspension or ceiling are that mutuelle's business.
pub(crate) fn shows(caller: &Caller, coverage: &Coverage) -> bool {
    caller.kind == OrgKind::Provider
        || coverage.organization == caller.org.as_str()
        || coverage.layer == passerelle_domain::product::Layer::Base
}

/// Providers check anyone at their front desk; mutuelles and schemes only the people they cover,
/// and by member number only under their own numbers: another organisation's numbering is its
/// own business (asking `mut-b`'s numbers in turn would list which of one's members it holds).
/// A claim a scheme forwards is held to the same rule.
pub(crate) fn may_check(caller: &Caller, person: &PersonKey, facts: &EligibilityFacts) -> bool {
    caller.kind == OrgKind::Provider
        || (may_name(caller, person)
            && facts
                .coverages
                .iter()
                .any(|c| c.coverage.organization == caller.org.as_str()))
}

/// Whether the caller may name a person so, judged before anything is read: by member number,
/// a mutuelle or a scheme only under its own numbers (providers anyone's), so that what another
/// organisation's numbers cover (several people born on one day, say) is not told to it.
pub(crate) fn may_name(caller: &Caller, person: &PersonKey) -> bool {
    caller.kind == OrgKind::Provider
        || match person {
            PersonKey::Member { organization, .. } | PersonKey::MemberBorn { organization, .. } => {
                organization == caller.org.as_str()
            }
            _ => true,
        }
}

/// The fault of a member number and birth date that several people covered under it answer.
pub(crate) fn ambiguous_person() -> FieldError {
    FieldError::new(
        "/beneficiary/birth_date",
        "ambiguous_person",
        "several people covered under this member number were born so: name the one meant by id or national_id",
        "plusieurs personnes couvertes sous ce numéro d'adhérent ont cette date de naissance : désignez la personne voulue par id ou national_id",
    )
}

/// Whether a store's error is the ambiguity of [`ambiguous_person`].
pub(crate) fn is_ambiguous(error: &StoreError) -> bool {
    matches!(error, StoreError::Conflict { constraint } if constraint == AMBIGUOUS_PERSON)
}

/// Check a person's coverage for a service and, with an amount, estimate each payer's share.
///
/// Providers check anyone at their front desk; mutuelles and schemes only people they cover, and
/// by member number only under their own numbers
/// (404 otherwise, as for an unknown person); other kinds get 403. Each coverage is judged on
/// the service date: start and end, waiting period, contributions and grace, status, the
/// product's rules, exclusions, remaining ceiling and age limit. A provider sees every
/// coverage of the person, and with an amount the estimate; a mutuelle or a scheme its own
/// coverages and the base affiliations, without an estimate. `eligible` is true when at least
/// one listed coverage pays. Every check is audited (who asked about whom, and the outcome), a
/// check answered 404 too (`eligibility.not_found`, naming only an `id` the caller sent).
#[utoipa::path(
    post,
    path = "/v1/eligibility-checks",
    tag = "eligibility",
    request_body = EligibilityRequest,
    responses(
        (status = 200, description = "The answer for each coverage the caller may see (every one for a provider)", body = EligibilityView),
        (status = 404, description = "Unknown person, or one you may not see", body = crate::problem::Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = ["eligibility:check"]))
)]
pub async fn check_eligibility(
    State(state): State<AppState>,
    auth: Authorized<perm::CheckEligibility>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<Json<EligibilityView>, ApiError> {
    let check = read_check(&body, state.clock.today(), &state.national_ids)?;
    Ok(Json(answer(&state, &auth.caller, &check).await?.view))
}

/// A check that finds no one the caller may check is audited too (`eligibility.not_found`), so
/// that an organisation probing for people leaves a trace. The event names the person only by
/// an id the caller sent in the form of one, whether or not it exists: an event that named
/// existing people alone would tell the caller, who reads its own events, what the 404 hides.
/// What else was typed in (a national id, a member number) is personal data and is not kept.
async fn not_found(state: &AppState, caller: &Caller, person: &PersonKey) -> ApiError {
    let named = match person {
        PersonKey::Id(id) if uuid::Uuid::try_parse(id).is_ok() => id.as_str(),
        _ => "",
    };
    let ctx = caller.write_context(state, None);
    match state
        .store
        .append_audit(&[ctx.audit("eligibility.not_found", "beneficiary", named)])
        .await
    {
        Ok(()) => {
            metrics::counter!("passerelle_eligibility_checks_total", "outcome" => "not_found").increment(1);
            ApiError::NotFound
        }
        Err(e) => e.into(),
    }
}

/// The facts of the person a check or a claim names. A record merged into another person holds
/// no coverage: named by its id, it is that person (`POST /v1/beneficiaries/{id}/merge`), so
/// that a front desk holding the old id is not told "not covered". Only an answer without any
/// coverage reads the record again, which no check of a covered person gives.
pub(crate) async fn facts_of(
    state: &AppState,
    person: &PersonKey,
    service_date: NaiveDate,
    from_primary: bool,
) -> Result<Option<EligibilityFacts>, StoreError> {
    let facts = state
        .store
        .eligibility_facts(person, service_date, from_primary)
        .await?;
    if let (Some(found), PersonKey::Id(id)) = (&facts, person) {
        if found.coverages.is_empty() {
            if let Some(into) = state.store.get_beneficiary(id).await?.and_then(|b| b.merged_into) {
                return state
                    .store
                    .eligibility_facts(&PersonKey::Id(into), service_date, from_primary)
                    .await;
            }
        }
    }
    Ok(facts)
}

/// Judges every coverage of the person and audits the check: the one path of both the `/v1`
/// and the FHIR forms.
pub(crate) async fn answer(state: &AppState, caller: &Caller, check: &Check) -> Result<Answer, ApiError> {
    if !may_name(caller, &check.person) {
        return Err(not_found(state, caller, &check.person).await);
    }
    let facts = match facts_of(state, &check.person, check.service_date, false).await {
        // Several people: named by no one of them, audited as a check that found no one.
        Err(e) if is_ambiguous(&e) => {
            return Err(match not_found(state, caller, &check.person).await {
                ApiError::NotFound => ApiError::field(ambiguous_person()),
                other => other,
            });
        }
        facts => facts?,
    };
    let Some(facts) = facts.filter(|facts| may_check(caller, &check.person, facts)) else {
        return Err(not_found(state, caller, &check.person).await);
    };
    let answers: Vec<(&Coverage, CoverageEligibility)> = facts
        .coverages
        .iter()
        .map(|c| {
            let input = facts.input(c, check.service_date, check.care_level, check.category);
            (&c.coverage, evaluate_with_later_versions(&input, &c.later_versions))
        })
        .collect();
    // The answer covers only the coverages the caller may read.
    let shown = |c: &Coverage| shows(caller, c);
    let paying = || {
        answers
            .iter()
            .filter(|(c, a)| shown(c) && a.is_eligible())
            .map(|(c, _)| *c)
    };
    let base_coverage = choose_base(paying());
    let complementary_coverage = choose_complementary(paying());
    let eligible = paying().next().is_some();
    // The estimate is the front desk's: what each payer pays and what is left to the patient
    // needs every payer, which only a provider sees. A mutuelle or a scheme gets none.
    let estimate_view = match check.amount {
        Some(billed) if caller.kind == OrgKind::Provider => {
            let answer_of = |c: Option<&Coverage>| {
                c.and_then(|c| answers.iter().find(|(x, _)| x.id == c.id))
                    .map(|(_, a)| a)
            };
            let base = answer_of(base_coverage);
            let complementary = answer_of(complementary_coverage);
            let split = estimate(
                billed,
                base.and_then(|a| a.paying_rate()),
                complementary.and_then(|a| a.paying_rate()),
                complementary.and_then(|a| a.remaining_ceiling_xof),
            )
            .map_err(|e| ApiError::Internal(format!("estimate: {e:?}")))?;
            Some(EstimateView {
                billed_xof: split.billed_xof.value(),
                base_xof: split.base_xof.value(),
                complementary_xof: split.complementary_xof.value(),
                patient_xof: split.patient_xof.value(),
            })
        }
        _ => None,
    };
    let lang = crate::problem::current_lang();
    let view = EligibilityView {
        beneficiary: facts.person.clone(),
        service_date: check.service_date,
        eligible,
        coverages: answers
            .iter()
            .filter(|(c, _)| shown(c))
            .map(|(c, a)| CoverageEligibilityView {
                coverage: c.id.clone(),
                organization: c.organization.clone(),
                layer: c.layer.as_str().to_owned(),
                status: a.status.as_str().to_owned(),
                rate_bp: a.rate_bp.map(|r| r.value()),
                reasons: a
                    .reasons
                    .iter()
                    .map(|r| ReasonView {
                        code: r.code.as_str().to_owned(),
                        message: lang.pick(r.code.message_en(), r.code.message_fr()).to_owned(),
                        until: r.until,
                    })
                    .collect(),
                remaining_ceiling_xof: a.remaining_ceiling_xof.map(|x| x.value()),
            })
            .collect(),
        estimate: estimate_view,
    };
    // Who asked about whom, and the answer: durable before the answer leaves. The store chains
    // the events of concurrent checks in one transaction.
    let ctx = caller.write_context(state, None);
    let action = if eligible {
        passerelle_domain::audit::ELIGIBILITY_ELIGIBLE
    } else {
        passerelle_domain::audit::ELIGIBILITY_NOT_ELIGIBLE
    };
    state
        .store
        .append_audit(&[ctx.audit(action, passerelle_domain::audit::CHECK_RESOURCE_TYPE, &facts.person)])
        .await?;
    metrics::counter!("passerelle_eligibility_checks_total", "outcome" => if eligible { "eligible" } else { "not_eligible" })
        .increment(1);
    Ok(Answer {
        base: base_coverage.map(|c| c.id.clone()),
        complementary: complementary_coverage.map(|c| c.id.clone()),
        view,
    })
}
