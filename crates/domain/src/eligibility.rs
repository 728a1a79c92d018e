//! Whether one coverage pays for one care on one day (API.md §5 Eligibility), and the household
//! age rules a registration must meet. Every applicable reason is reported, not only the first:
//! the front desk needs to know everything the member must fix.

use std::borrow::Borrow;

use chrono::{Datelike, Days, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::coverage::{Coverage, CoverageStatus, Relationship};
use crate::error::FieldError;
use crate::money::{BasisPoints, Xof};
use crate::product::{CareLevel, Category, ProductVersion};

/// How much of a birth date is known; many people know only their year of birth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BirthDatePrecision {
    Day,
    Year,
}

impl BirthDatePrecision {
    pub const ALL: [BirthDatePrecision; 2] = [BirthDatePrecision::Day, BirthDatePrecision::Year];

    pub fn as_str(self) -> &'static str {
        match self {
            BirthDatePrecision::Day => "day",
            BirthDatePrecision::Year => "year",
        }
    }

    pub fn parse(s: &str) -> Option<BirthDatePrecision> {
        BirthDatePrecision::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

/// Age in whole years on a date; 0 before birth. A year-only birth date counts from 1 January
/// (API.md §5), whatever month and day it is stored with. Someone born on 29 February has their
/// birthday on 1 March in common years.
pub fn age_on(birth_date: NaiveDate, precision: BirthDatePrecision, on: NaiveDate) -> u32 {
    let born = earliest_birth(birth_date, precision);
    if on < born {
        return 0;
    }
    let mut years = on.year() - born.year();
    if (on.month(), on.day()) < (born.month(), born.day()) {
        years -= 1;
    }
    u32::try_from(years).unwrap_or(0)
}

/// The first day the person may have been alive: the birth date, or 1 January of a year-only
/// one (whatever month and day it is stored with).
pub fn earliest_birth(birth_date: NaiveDate, precision: BirthDatePrecision) -> NaiveDate {
    match precision {
        BirthDatePrecision::Day => birth_date,
        BirthDatePrecision::Year => birth_date.with_ordinal(1).unwrap_or(birth_date),
    }
}

/// Whether a person is born after `start`, the first day of a coverage: no one is covered
/// before birth (a pregnancy is the mother's care). A year-only birth date is after `start` only
/// when its year is. Judged for a registration's principal and for a dependant added with its
/// own start date; a dependant registered with a household shares the household's start date,
/// which a spreadsheet posted again keeps while its children are born.
pub fn born_after(birth_date: NaiveDate, precision: BirthDatePrecision, start: NaiveDate) -> bool {
    match precision {
        BirthDatePrecision::Day => birth_date > start,
        BirthDatePrecision::Year => birth_date.year() > start.year(),
    }
}

/// The error of a member born after the coverage's start date, at its `birth_date`.
pub fn born_after_start(field: String, start: NaiveDate) -> FieldError {
    FieldError::new(
        field,
        "born_after_start",
        format!("is after the coverage's start date, {start}: no one is covered before birth; cover a newborn from its birth date"),
        format!("est postérieure à la date de début de la couverture, le {start} : nul n'est couvert avant sa naissance ; couvrez un nouveau-né à partir de sa date de naissance"),
    )
}

/// A `child` older than the product's `child_max_age` on `on`. The same rule serves registration
/// (on the start date) and eligibility (on the service date).
pub fn over_child_age_limit(
    product: &ProductVersion,
    relationship: Relationship,
    birth_date: NaiveDate,
    precision: BirthDatePrecision,
    on: NaiveDate,
) -> bool {
    relationship == Relationship::Child
        && product
            .child_max_age
            .is_some_and(|max| age_on(birth_date, precision, on) > max)
}

/// A `child` found by national id is the person stored under it, birth date included: the one
/// sent agrees with it only as far as both know it (the same year, when either gives only the
/// year, which counts from 1 January), so storage judges the age limit again on the stored one
/// once it has found the person.
pub fn stored_child_over_age_limit(
    product: &ProductVersion,
    relationship: Relationship,
    stored: &crate::beneficiary::Beneficiary,
    start: NaiveDate,
) -> bool {
    over_child_age_limit(
        product,
        relationship,
        stored.birth_date,
        stored.birth_date_precision,
        start,
    )
}

/// The fault [`stored_child_over_age_limit`] answers, at `field`.
pub fn matched_child_too_old(field: impl Into<String>) -> FieldError {
    FieldError::new(
        field,
        "dependant_age_limit",
        "the person registered under this national id is past the product's child_max_age on the start date: their registered birth date counts, not the one sent",
        "la personne enregistrée sous ce numéro d'identité nationale dépasse le child_max_age du produit à la date de début : c'est sa date de naissance enregistrée qui compte, non celle envoyée",
    )
}

/// What the household rules need to know about one dependant of a registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DependantFacts {
    pub relationship: Relationship,
    pub birth_date: NaiveDate,
    pub birth_date_precision: BirthDatePrecision,
}

/// The product's household rules (`max_dependants`, `child_max_age` on the start date) for one
/// registration, every violation with its pointer into the registration body.
pub fn household_errors(
    product: &ProductVersion,
    start_date: NaiveDate,
    dependants: &[DependantFacts],
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if let Some(max) = product.max_dependants {
        if dependants.len() > max as usize {
            errors.push(FieldError::new(
                "/dependants",
                "too_many_dependants",
                format!("the product admits at most {max} dependants per household"),
                format!("le produit limite à {max} le nombre d'ayants droit par ménage"),
            ));
        }
    }
    for (i, d) in dependants.iter().enumerate() {
        if over_child_age_limit(
            product,
            d.relationship,
            d.birth_date,
            d.birth_date_precision,
            start_date,
        ) {
            let max = product.child_max_age.unwrap_or_default();
            errors.push(FieldError::new(
                format!("/dependants/{i}/birth_date"),
                "dependant_age_limit",
                format!("a child dependant must be at most {max} years old on the start date"),
                format!("un enfant ayant droit doit avoir au plus {max} ans à la date de début"),
            ));
        }
    }
    errors
}

/// Why a coverage does not pay, in the order API.md §5 lists them; `Ord` follows that order so
/// reasons always come out the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReasonCode {
    NotStarted,
    WaitingPeriod,
    ContributionsInArrears,
    Suspended,
    Terminated,
    Ended,
    NotCovered,
    ExcludedCategory,
    CeilingExhausted,
    DependantAgeLimit,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 10] = [
        ReasonCode::NotStarted,
        ReasonCode::WaitingPeriod,
        ReasonCode::ContributionsInArrears,
        ReasonCode::Suspended,
        ReasonCode::Terminated,
        ReasonCode::Ended,
        ReasonCode::NotCovered,
        ReasonCode::ExcludedCategory,
        ReasonCode::CeilingExhausted,
        ReasonCode::DependantAgeLimit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReasonCode::NotStarted => "NOT_STARTED",
            ReasonCode::WaitingPeriod => "WAITING_PERIOD",
            ReasonCode::ContributionsInArrears => "CONTRIBUTIONS_IN_ARREARS",
            ReasonCode::Suspended => "SUSPENDED",
            ReasonCode::Terminated => "TERMINATED",
            ReasonCode::Ended => "ENDED",
            ReasonCode::NotCovered => "NOT_COVERED",
            ReasonCode::ExcludedCategory => "EXCLUDED_CATEGORY",
            ReasonCode::CeilingExhausted => "CEILING_EXHAUSTED",
            ReasonCode::DependantAgeLimit => "DEPENDANT_AGE_LIMIT",
        }
    }

    pub fn parse(s: &str) -> Option<ReasonCode> {
        ReasonCode::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn message_en(self) -> &'static str {
        match self {
            ReasonCode::NotStarted => "the coverage has not started yet",
            ReasonCode::WaitingPeriod => "the waiting period is not over",
            ReasonCode::ContributionsInArrears => "contributions are not up to date",
            ReasonCode::Suspended => "the coverage is suspended",
            ReasonCode::Terminated => "the coverage has been terminated",
            ReasonCode::Ended => "the coverage ended before the service date",
            ReasonCode::NotCovered => "the product does not cover this care at this level",
            ReasonCode::ExcludedCategory => "the product excludes this category of care",
            ReasonCode::CeilingExhausted => "the annual ceiling is exhausted",
            ReasonCode::DependantAgeLimit => "the child is older than the product's age limit for dependants",
        }
    }

    pub fn message_fr(self) -> &'static str {
        match self {
            ReasonCode::NotStarted => "la couverture n'a pas encore commencé",
            ReasonCode::WaitingPeriod => "le délai de carence (période d'observation) n'est pas écoulé",
            ReasonCode::ContributionsInArrears => "les cotisations ne sont pas à jour",
            ReasonCode::Suspended => "la couverture est suspendue",
            ReasonCode::Terminated => "la couverture a été résiliée",
            ReasonCode::Ended => "la couverture a pris fin avant la date des soins",
            ReasonCode::NotCovered => "le produit ne couvre pas ces soins à ce niveau",
            ReasonCode::ExcludedCategory => "le produit exclut cette catégorie de soins",
            ReasonCode::CeilingExhausted => "le plafond annuel est atteint",
            ReasonCode::DependantAgeLimit => "l'enfant dépasse l'âge limite des ayants droit du produit",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    /// The first day on which the reason no longer holds, when the rules alone can tell.
    pub until: Option<NaiveDate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EligibilityStatus {
    Eligible,
    NotEligible,
}

impl EligibilityStatus {
    pub const ALL: [EligibilityStatus; 2] = [EligibilityStatus::Eligible, EligibilityStatus::NotEligible];

    pub fn as_str(self) -> &'static str {
        match self {
            EligibilityStatus::Eligible => "eligible",
            EligibilityStatus::NotEligible => "not_eligible",
        }
    }
}

/// The answer for one coverage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageEligibility {
    pub status: EligibilityStatus,
    /// The rate the product applies to this care (`ProductVersion::paying_rate`), shown even
    /// while another reason blocks it, so the desk can tell the member what they will get.
    /// Use `paying_rate()` to price.
    pub rate_bp: Option<BasisPoints>,
    pub reasons: Vec<Reason>,
    /// For complementary and primary products with an annual ceiling: what is left of it this
    /// plan year, before this care.
    pub remaining_ceiling_xof: Option<Xof>,
}

impl CoverageEligibility {
    pub fn is_eligible(&self) -> bool {
        self.status == EligibilityStatus::Eligible
    }

    /// The rate to price with: `None` unless the coverage is eligible.
    pub fn paying_rate(&self) -> Option<BasisPoints> {
        self.rate_bp.filter(|_| self.is_eligible())
    }

    pub fn has(&self, code: ReasonCode) -> bool {
        self.reasons.iter().any(|r| r.code == code)
    }
}

/// Everything the rules need for one coverage and one care. Storage gathers it; `evaluate`
/// decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EligibilityInput<'a> {
    pub coverage: &'a Coverage,
    /// The product version in force on the service date (`product::select_version`); `None`
    /// when the product had no version yet, which covers nothing.
    pub product: Option<&'a ProductVersion>,
    pub birth_date: NaiveDate,
    pub birth_date_precision: BirthDatePrecision,
    /// For a dependant, the principal coverage's `paid_through`; ignored for a principal.
    pub principal_paid_through: Option<NaiveDate>,
    /// For a dependant, the principal coverage's status and end date; `None` for a principal.
    pub principal: Option<PrincipalStanding>,
    pub service_date: NaiveDate,
    pub care_level: CareLevel,
    pub category: Option<Category>,
    /// Complementary shares already counted under this coverage in the plan year of the service
    /// date (every claim not rejected or cancelled).
    pub complementary_used_xof: Xof,
}

/// What a dependant's eligibility takes from the principal's coverage besides its payments. The
/// household's membership is the principal's: when it is suspended, terminated or ends, the
/// dependants' coverages stop paying with it, whatever their own rows say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrincipalStanding {
    pub status: CoverageStatus,
    pub end_date: Option<NaiveDate>,
}

/// The plan year (API.md §5: the calendar year) holding a date, first and last day included.
pub fn plan_year(date: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first = date.with_ordinal(1).unwrap_or(date);
    let last = NaiveDate::from_ymd_opt(date.year(), 12, 31).unwrap_or(date);
    (first, last)
}

/// The contributions that count for a coverage. A dependant's rights follow the household's
/// payments, which are usually made on the principal's coverage; a payment recorded on the
/// dependant's own coverage counts too, hence the later of the two.
pub fn effective_paid_through(coverage: &Coverage, principal_paid_through: Option<NaiveDate>) -> Option<NaiveDate> {
    if coverage.is_dependant() {
        coverage.paid_through.max(principal_paid_through)
    } else {
        coverage.paid_through
    }
}

/// `paid_through + grace_period_days` before the service date, or nothing paid at all.
fn in_arrears(paid_through: Option<NaiveDate>, grace_period_days: u32, service_date: NaiveDate) -> bool {
    match paid_through {
        None => true,
        // A date beyond chrono's range is so far ahead that nothing can be in arrears.
        Some(paid) => paid
            .checked_add_days(Days::new(grace_period_days.into()))
            .is_some_and(|covered_until| covered_until < service_date),
    }
}

/// The coverage's own standing and, for a dependant, its household's: the principal's.
fn standings<'a>(input: &'a EligibilityInput<'_>) -> impl Iterator<Item = (CoverageStatus, Option<NaiveDate>)> + 'a {
    let coverage = input.coverage;
    let principal = input.principal.filter(|_| coverage.is_dependant());
    std::iter::once((coverage.status, coverage.end_date)).chain(principal.map(|p| (p.status, p.end_date)))
}

/// Whether the coverage still pays on `day` as far as its end is concerned: a coverage that
/// ends before that day never reaches it, nor does a dependant's whose household ends first,
/// nor one terminated without an end date (it never pays again), nor a child's who is past the
/// age limit of `product`, the version in force that day. A suspension can be lifted, so it
/// does not count here.
fn reaches(input: &EligibilityInput<'_>, product: Option<&ProductVersion>, day: NaiveDate) -> bool {
    let c = input.coverage;
    standings(input).all(|(status, end)| match end {
        Some(end) => day <= end,
        None => status != CoverageStatus::Terminated,
    }) && !product
        .is_some_and(|p| over_child_age_limit(p, c.relationship, input.birth_date, input.birth_date_precision, day))
}

/// An `until` names the first day the reason no longer holds, which a member reads as the day
/// care is paid again; a day the coverage never reaches would promise what `ENDED`,
/// `TERMINATED` or `DEPENDANT_AGE_LIMIT` then refuses, so there is no day to name (API.md §5).
/// `in_force` gives the product's version in force on a day.
fn forget_unreached_days<'p>(
    input: &EligibilityInput<'_>,
    in_force: impl Fn(NaiveDate) -> Option<&'p ProductVersion>,
    reasons: &mut [Reason],
) {
    for r in reasons {
        r.until = r.until.filter(|day| reaches(input, in_force(*day), *day));
    }
}

pub fn evaluate(input: &EligibilityInput<'_>) -> CoverageEligibility {
    let mut answer = evaluate_days(input);
    forget_unreached_days(input, |_| input.product, &mut answer.reasons);
    answer
}

/// `evaluate`, with each `until` the day its reason stops holding, reached or not.
fn evaluate_days(input: &EligibilityInput<'_>) -> CoverageEligibility {
    let coverage = input.coverage;
    let on = input.service_date;
    let mut reasons = Vec::new();
    let mut reason = |code, until| reasons.push(Reason { code, until });

    // A child registered with its household shares the household's start date, which may be
    // before its birth: it is covered from its birth, never for care before it (API.md §5).
    let starts = coverage
        .start_date
        .max(earliest_birth(input.birth_date, input.birth_date_precision));
    let standings = || standings(input);
    if on < starts {
        reason(ReasonCode::NotStarted, Some(starts));
    }
    // Before the start date the waiting period is still ahead too; naming its end as well tells
    // the member the day care is actually paid, not merely the day membership begins.
    if let Some(p) = input.product.filter(|p| p.waiting_period_days > 0) {
        let eligible_from = coverage
            .start_date
            .checked_add_days(Days::new(p.waiting_period_days.into()));
        if eligible_from.is_none_or(|d| on < d) {
            reason(ReasonCode::WaitingPeriod, eligible_from);
        }
    }
    let mutuelle_layer = coverage.layer.is_mutuelle_layer();
    if mutuelle_layer {
        let grace = input.product.map_or(0, |p| p.grace_period_days);
        let paid = effective_paid_through(coverage, input.principal_paid_through);
        if in_arrears(paid, grace, on) {
            reason(ReasonCode::ContributionsInArrears, None);
        }
    }
    for (status, end_date) in standings() {
        match status {
            CoverageStatus::Active => {}
            CoverageStatus::Suspended => reason(ReasonCode::Suspended, None),
            // A termination takes effect after its end date: a service before it, claimed
            // late, is still paid. Without an end date it never covered anything.
            CoverageStatus::Terminated if end_date.is_some_and(|end| on <= end) => {}
            CoverageStatus::Terminated => reason(ReasonCode::Terminated, None),
        }
        if end_date.is_some_and(|end| on > end) {
            reason(ReasonCode::Ended, None);
        }
    }

    let matched_rate = input.product.and_then(|p| p.rate_for(input.care_level, input.category));
    if matched_rate.is_none_or(|r| r.value() == 0) {
        reason(ReasonCode::NotCovered, None);
    }
    if let (Some(p), Some(category)) = (input.product, input.category) {
        if p.excludes(category) {
            reason(ReasonCode::ExcludedCategory, None);
        }
    }

    let remaining_ceiling_xof = input
        .product
        .and_then(|p| p.annual_ceiling_xof)
        .filter(|_| mutuelle_layer)
        .map(|ceiling| Xof(ceiling.0.saturating_sub(input.complementary_used_xof.0.max(0)).max(0)));
    if remaining_ceiling_xof == Some(Xof::ZERO) {
        // A new plan year brings the ceiling back, unless the ceiling is 0: then it never ends.
        let renews = input.product.and_then(|p| p.annual_ceiling_xof) > Some(Xof::ZERO);
        let next_year = NaiveDate::from_ymd_opt(on.year() + 1, 1, 1).filter(|_| renews);
        reason(ReasonCode::CeilingExhausted, next_year);
    }

    if input.product.is_some_and(|p| {
        over_child_age_limit(
            p,
            coverage.relationship,
            input.birth_date,
            input.birth_date_precision,
            on,
        )
    }) {
        reason(ReasonCode::DependantAgeLimit, None);
    }

    reasons.sort_by_key(|r| r.code);
    // A dependant suspended (or ended) with the principal is told so once.
    reasons.dedup();
    let status = if reasons.is_empty() {
        EligibilityStatus::Eligible
    } else {
        EligibilityStatus::NotEligible
    };
    CoverageEligibility {
        status,
        rate_bp: input
            .product
            .and_then(|p| p.paying_rate(input.care_level, input.category)),
        reasons,
        remaining_ceiling_xof,
    }
}

/// The reasons whose end the product's versions decide: a later version may shorten the waiting
/// period, lengthen the grace after the contributions paid, raise or lift the ceiling, or cover a
/// care the one in force does not. Arrears otherwise end with a payment, which no day foretells.
const TIMED_BY_VERSIONS: [ReasonCode; 5] = [
    ReasonCode::WaitingPeriod,
    ReasonCode::ContributionsInArrears,
    ReasonCode::NotCovered,
    ReasonCode::ExcludedCategory,
    ReasonCode::CeilingExhausted,
];

/// `evaluate`, knowing also the product's versions that take effect after the service date
/// (`later`, in any order; a version starting on or before the service date is ignored, since
/// `input.product` is the one in force then). The `until` of WAITING_PERIOD,
/// CONTRIBUTIONS_IN_ARREARS, NOT_COVERED, EXCLUDED_CATEGORY and CEILING_EXHAUSTED becomes the first day after the service date on which
/// the reason no longer holds under the version in force that day, the usage of the service
/// date's plan year counting until its end (nothing is used yet in a later plan year), and
/// `None` when no version ends it. Every `until` is left out on a day the coverage never
/// reaches, a child's age limit being the version's in force that day. Everything else is
/// `evaluate`'s answer, and with no later version the answer is `evaluate`'s exactly.
///
/// A reason can only change on a day some version starts, on `start_date + waiting_period_days`
/// of some version, or on 1 January of the next plan year; so those days are the ones tried.
pub fn evaluate_with_later_versions<V: Borrow<ProductVersion>>(
    input: &EligibilityInput<'_>,
    later: &[V],
) -> CoverageEligibility {
    let mut answer = evaluate_days(input);
    let on = input.service_date;
    // A version numbered below the one in force was superseded before it could take effect.
    let in_force_now = input.product.map_or(0, |v| v.version);
    let mut later: Vec<&ProductVersion> = later
        .iter()
        .map(Borrow::borrow)
        .filter(|v| v.effective_from > on && v.version > in_force_now)
        .collect();
    // As `product::select_version`: the highest number among those started.
    later.sort_by_key(|v| (v.effective_from, v.version));
    let in_force = |day: NaiveDate| {
        later
            .iter()
            .filter(|v| v.effective_from <= day)
            .max_by_key(|v| v.version)
            .copied()
            .or(input.product)
    };
    if later.is_empty() || !answer.reasons.iter().any(|r| TIMED_BY_VERSIONS.contains(&r.code)) {
        forget_unreached_days(input, in_force, &mut answer.reasons);
        return answer;
    }
    let next_plan_year = NaiveDate::from_ymd_opt(on.year() + 1, 1, 1);
    let start = input.coverage.start_date;
    let waiting_ends = input
        .product
        .into_iter()
        .chain(later.iter().copied())
        .filter_map(|v| start.checked_add_days(Days::new(v.waiting_period_days.into())));
    let mut days: Vec<NaiveDate> = later
        .iter()
        .map(|v| v.effective_from)
        .chain(waiting_ends)
        .chain(next_plan_year)
        .filter(|day| *day > on)
        .collect();
    days.sort_unstable();
    days.dedup();
    let answers: Vec<(NaiveDate, CoverageEligibility)> = days
        .into_iter()
        .map(|day| {
            let mut then = *input;
            then.service_date = day;
            then.product = in_force(day);
            if next_plan_year.is_some_and(|next| day >= next) {
                then.complementary_used_xof = Xof::ZERO;
            }
            // Only which reasons hold is read here: their days need no pruning.
            (day, evaluate_days(&then))
        })
        .collect();
    for r in answer
        .reasons
        .iter_mut()
        .filter(|r| TIMED_BY_VERSIONS.contains(&r.code))
    {
        r.until = answers.iter().find(|(_, e)| !e.has(r.code)).map(|(day, _)| *day);
    }
    forget_unreached_days(input, in_force, &mut answer.reasons);
    answer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::product::{select_version, Layer, Rule};
    use proptest::prelude::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// A Togolese mutuelle's complementary product: 90 days' waiting, 30 days' grace, 150 000
    /// XOF a year, children up to 21, no optical.
    fn tg_complementary() -> ProductVersion {
        ProductVersion {
            product_id: "prod-tsevie".into(),
            organization: "mut-tsevie".into(),
            layer: Layer::Complementary,
            name: "Complémentaire Tsévié".into(),
            rules: vec![
                Rule {
                    care_level: Some(CareLevel::UniversityHospital),
                    category: None,
                    rate_bp: BasisPoints(0),
                },
                Rule {
                    care_level: None,
                    category: Some(Category::Pharmacy),
                    rate_bp: BasisPoints(5_000),
                },
                Rule {
                    care_level: None,
                    category: None,
                    rate_bp: BasisPoints(10_000),
                },
            ],
            annual_ceiling_xof: Some(Xof(150_000)),
            waiting_period_days: 90,
            grace_period_days: 30,
            excluded_categories: vec![Category::Optical],
            max_dependants: Some(6),
            child_max_age: Some(21),
            effective_from: d("2025-01-01"),
            version: 1,
        }
    }

    fn inam_base() -> ProductVersion {
        ProductVersion {
            product_id: "prod-inam".into(),
            organization: "tg-inam".into(),
            layer: Layer::Base,
            name: "AMU — INAM".into(),
            rules: vec![Rule {
                care_level: None,
                category: None,
                rate_bp: BasisPoints(8_000),
            }],
            annual_ceiling_xof: None,
            waiting_period_days: 0,
            grace_period_days: 0,
            excluded_categories: vec![],
            max_dependants: None,
            child_max_age: None,
            effective_from: d("2024-01-01"),
            version: 1,
        }
    }

    fn coverage(layer: Layer, relationship: Relationship) -> Coverage {
        Coverage {
            id: "cov-1".into(),
            beneficiary: "ben-1".into(),
            product: "prod-tsevie".into(),
            organization: "mut-tsevie".into(),
            layer,
            member_number: "TSV-0001".into(),
            relationship,
            principal_coverage: relationship.is_dependant().then(|| "cov-0".to_owned()),
            start_date: d("2026-01-01"),
            end_date: None,
            status: CoverageStatus::Active,
            paid_through: Some(d("2026-12-31")),
            version: 1,
        }
    }

    /// An adult principal, consulting at a health centre, nothing used yet.
    fn input<'a>(c: &'a Coverage, p: &'a ProductVersion, service_date: &str) -> EligibilityInput<'a> {
        EligibilityInput {
            coverage: c,
            product: Some(p),
            birth_date: d("1980-05-17"),
            birth_date_precision: BirthDatePrecision::Day,
            principal_paid_through: None,
            principal: None,
            service_date: d(service_date),
            care_level: CareLevel::HealthCenter,
            category: Some(Category::Consultation),
            complementary_used_xof: Xof::ZERO,
        }
    }

    fn codes(e: &CoverageEligibility) -> Vec<(&'static str, Option<NaiveDate>)> {
        e.reasons.iter().map(|r| (r.code.as_str(), r.until)).collect()
    }

    #[test]
    fn reason_codes_are_spelled_as_the_contract_and_explained_in_both_languages() {
        for code in ReasonCode::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
            assert_eq!(ReasonCode::parse(code.as_str()), Some(code));
            assert!(!code.message_en().is_empty());
            assert!(!code.message_fr().is_empty());
            assert_ne!(code.message_en(), code.message_fr());
        }
        assert!(ReasonCode::ALL.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(
            serde_json::to_value(EligibilityStatus::NotEligible).unwrap(),
            "not_eligible"
        );
        for p in BirthDatePrecision::ALL {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
            assert_eq!(BirthDatePrecision::parse(p.as_str()), Some(p));
        }
    }

    #[test]
    fn a_child_found_by_national_id_is_judged_on_the_stored_birth_date() {
        // API.md §5 Products: a stored `2004` is past 21 on 2026-03-02 (a year-only birth date
        // counts from 1 January: 22 on 2026-01-01), even when `2004-12-20` is sent, which would
        // make the child 21 that day and still accepted.
        let p = tg_complementary();
        let start = d("2026-03-02");
        let stored = |birth: &str, precision| crate::beneficiary::Beneficiary {
            id: "ben-2".into(),
            national_id: None,
            family_name: "Amegah".into(),
            given_names: "Kossi".into(),
            sex: crate::beneficiary::Sex::M,
            birth_date: d(birth),
            birth_date_precision: precision,
            phone: None,
            locality: None,
            created_at: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            version: 1,
            merged_into: None,
            merged_by: None,
            erased_at: None,
        };
        let year_only = stored("2004-12-20", BirthDatePrecision::Year);
        let to_the_day = stored("2004-12-20", BirthDatePrecision::Day);
        assert!(stored_child_over_age_limit(&p, Relationship::Child, &year_only, start));
        assert!(!stored_child_over_age_limit(
            &p,
            Relationship::Child,
            &to_the_day,
            start
        ));
        // The limit is a child's: a spouse born so is never past it.
        assert!(!stored_child_over_age_limit(
            &p,
            Relationship::Spouse,
            &year_only,
            start
        ));
    }

    #[test]
    fn each_reason_and_status_is_told_apart() {
        // Every reason has its own explanation in each language, and a status is spelled as
        // the contract spells it (API.md §5 Eligibility: "eligible" | "not_eligible").
        for (i, a) in ReasonCode::ALL.iter().enumerate() {
            for b in &ReasonCode::ALL[i + 1..] {
                assert_ne!(a.message_en(), b.message_en(), "{a:?} {b:?}");
                assert_ne!(a.message_fr(), b.message_fr(), "{a:?} {b:?}");
            }
        }
        assert_eq!(EligibilityStatus::Eligible.as_str(), "eligible");
        assert_eq!(EligibilityStatus::NotEligible.as_str(), "not_eligible");
    }

    #[test]
    fn ages_count_whole_years() {
        let day = BirthDatePrecision::Day;
        let year = BirthDatePrecision::Year;
        assert_eq!(age_on(d("2004-06-15"), day, d("2026-06-14")), 21);
        assert_eq!(age_on(d("2004-06-15"), day, d("2026-06-15")), 22);
        // Only the year is known: the birthday is 1 January whatever the stored month and day.
        assert_eq!(age_on(d("2004-01-01"), year, d("2025-12-31")), 21);
        assert_eq!(age_on(d("2004-01-01"), year, d("2026-01-01")), 22);
        assert_eq!(age_on(d("2004-06-15"), year, d("2026-01-01")), 22);
        assert_eq!(age_on(d("2024-02-29"), day, d("2025-02-28")), 0);
        assert_eq!(age_on(d("2024-02-29"), day, d("2025-03-01")), 1);
        assert_eq!(age_on(d("2026-05-01"), day, d("2026-01-01")), 0);
    }

    #[test]
    fn a_paid_up_member_after_the_waiting_period_is_eligible() {
        let (p, c) = (
            tg_complementary(),
            coverage(Layer::Complementary, Relationship::Principal),
        );
        let e = evaluate(&input(&c, &p, "2026-04-01"));
        assert_eq!(e.status, EligibilityStatus::Eligible);
        assert!(e.reasons.is_empty());
        assert_eq!(e.rate_bp, Some(BasisPoints(10_000)));
        assert_eq!(e.paying_rate(), Some(BasisPoints(10_000)));
        assert_eq!(e.remaining_ceiling_xof, Some(Xof(150_000)));
    }

    #[test]
    fn the_waiting_period_ends_on_start_plus_its_days() {
        let (p, c) = (
            tg_complementary(),
            coverage(Layer::Complementary, Relationship::Principal),
        );
        // 2026-01-01 + 90 days = 2026-04-01 (31 + 28 + 31 days later), that day included.
        let e = evaluate(&input(&c, &p, "2026-03-31"));
        assert_eq!(codes(&e), [("WAITING_PERIOD", Some(d("2026-04-01")))]);
        assert_eq!(e.rate_bp, Some(BasisPoints(10_000)));
        assert_eq!(e.paying_rate(), None);
    }

    #[test]
    fn no_until_names_a_day_the_coverage_never_reaches() {
        let p = tg_complementary();
        // The waiting period ends on 2026-04-01; a coverage ending on 31 March never gets there.
        let mut c = coverage(Layer::Complementary, Relationship::Principal);
        c.end_date = Some(d("2026-03-31"));
        assert_eq!(
            codes(&evaluate(&input(&c, &p, "2026-03-01"))),
            [("WAITING_PERIOD", None)]
        );
        // Ending that very day, it does.
        c.end_date = Some(d("2026-04-01"));
        assert_eq!(
            codes(&evaluate(&input(&c, &p, "2026-03-01"))),
            [("WAITING_PERIOD", Some(d("2026-04-01")))]
        );
        // A ceiling used up in a plan year the coverage does not outlast renews for nobody.
        c.end_date = Some(d("2026-12-31"));
        let mut i = input(&c, &p, "2026-06-01");
        i.complementary_used_xof = Xof(150_000);
        assert_eq!(codes(&evaluate(&i)), [("CEILING_EXHAUSTED", None)]);
        c.end_date = None;
        let mut i = input(&c, &p, "2026-06-01");
        i.complementary_used_xof = Xof(150_000);
        assert_eq!(codes(&evaluate(&i)), [("CEILING_EXHAUSTED", Some(d("2027-01-01")))]);
        // Terminated without an end date, it never pays again: nothing to wait for.
        c.status = CoverageStatus::Terminated;
        assert_eq!(
            codes(&evaluate(&input(&c, &p, "2026-03-01"))),
            [("WAITING_PERIOD", None), ("TERMINATED", None)]
        );
        // A suspension can be lifted: the day still stands.
        c.status = CoverageStatus::Suspended;
        assert_eq!(
            codes(&evaluate(&input(&c, &p, "2026-03-01"))),
            [("WAITING_PERIOD", Some(d("2026-04-01"))), ("SUSPENDED", None)]
        );
        // A dependant's household ending first ends it too, and a later version that would
        // shorten the wait does not bring a day back.
        let mut child = coverage(Layer::Complementary, Relationship::Child);
        child.start_date = d("2026-01-01");
        let mut i = input(&child, &p, "2026-03-01");
        i.birth_date = d("2015-01-01");
        i.principal = Some(PrincipalStanding {
            status: CoverageStatus::Active,
            end_date: Some(d("2026-02-28")),
        });
        assert_eq!(codes(&evaluate(&i)), [("WAITING_PERIOD", None), ("ENDED", None)]);
        let mut v2 = p.clone();
        v2.version = 2;
        v2.effective_from = d("2026-03-15");
        v2.waiting_period_days = 79;
        i.principal = Some(PrincipalStanding {
            status: CoverageStatus::Active,
            end_date: Some(d("2026-03-20")),
        });
        assert_eq!(
            codes(&evaluate_with_later_versions(&i, &[&v2])),
            [("WAITING_PERIOD", None)]
        );
        i.principal = Some(PrincipalStanding {
            status: CoverageStatus::Active,
            end_date: Some(d("2026-03-21")),
        });
        assert_eq!(
            codes(&evaluate_with_later_versions(&i, &[&v2])),
            [("WAITING_PERIOD", Some(d("2026-03-21")))]
        );
        // A child who passes the age limit (21) before the wait is over never gets there
        // either; one who passes it the day after, does.
        i.principal = None;
        i.birth_date = d("2004-03-31");
        assert_eq!(codes(&evaluate(&i)), [("WAITING_PERIOD", None)]);
        i.birth_date = d("2004-04-02");
        assert_eq!(codes(&evaluate(&i)), [("WAITING_PERIOD", Some(d("2026-04-01")))]);
        // The limit is the version's in force that day: one raised by then keeps the day, and
        // one lowered by then loses it.
        i.birth_date = d("2004-03-31");
        let mut raised = p.clone();
        raised.version = 2;
        raised.effective_from = d("2026-03-15");
        raised.child_max_age = Some(25);
        assert_eq!(
            codes(&evaluate_with_later_versions(&i, &[&raised])),
            [("WAITING_PERIOD", Some(d("2026-04-01")))]
        );
        i.birth_date = d("2005-06-01");
        let mut lowered = raised.clone();
        lowered.child_max_age = Some(18);
        assert_eq!(
            codes(&evaluate_with_later_versions(&i, &[&lowered])),
            [("WAITING_PERIOD", None)]
        );
        // A coverage not yet started names its start only if the child is still young enough.
        i.service_date = d("2025-12-01");
        i.birth_date = d("2003-12-15");
        assert_eq!(codes(&evaluate(&i)), [("NOT_STARTED", None), ("WAITING_PERIOD", None)]);
    }

    #[test]
    fn a_child_born_after_its_households_start_is_covered_from_its_birth() {
        let mut p = tg_complementary();
        p.waiting_period_days = 0;
        let c = coverage(Layer::Complementary, Relationship::Child);
        let mut i = input(&c, &p, "2026-03-09");
        i.birth_date = d("2026-03-10");
        assert_eq!(codes(&evaluate(&i)), [("NOT_STARTED", Some(d("2026-03-10")))]);
        i.service_date = d("2026-03-10");
        assert!(evaluate(&i).is_eligible());
        // Before both the start and the birth, the later of the two ends it.
        i.service_date = d("2025-06-01");
        assert_eq!(codes(&evaluate(&i)), [("NOT_STARTED", Some(d("2026-03-10")))]);
        // A year-only birth date may be any day of its year: from 1 January on, care is paid.
        i.birth_date = d("2027-01-01");
        i.birth_date_precision = BirthDatePrecision::Year;
        i.service_date = d("2026-12-31");
        assert_eq!(codes(&evaluate(&i)), [("NOT_STARTED", Some(d("2027-01-01")))]);
        i.service_date = d("2027-01-01");
        assert!(evaluate(&i).is_eligible());
        // Ended before the birth: it never pays, and names no day it would.
        let mut ended = c.clone();
        ended.end_date = Some(d("2026-12-31"));
        let mut i = input(&ended, &p, "2026-03-09");
        i.birth_date = d("2026-03-10");
        let mut early = input(&ended, &p, "2026-03-09");
        early.birth_date = d("2027-02-01");
        assert_eq!(codes(&evaluate(&i)), [("NOT_STARTED", Some(d("2026-03-10")))]);
        assert_eq!(codes(&evaluate(&early)), [("NOT_STARTED", None)]);
    }

    #[test]
    fn before_the_start_both_the_start_and_the_waiting_period_are_reported() {
        let (p, c) = (
            tg_complementary(),
            coverage(Layer::Complementary, Relationship::Principal),
        );
        let e = evaluate(&input(&c, &p, "2025-12-31"));
        assert_eq!(
            codes(&e),
            [
                ("NOT_STARTED", Some(d("2026-01-01"))),
                ("WAITING_PERIOD", Some(d("2026-04-01")))
            ]
        );
        let mut no_wait = p.clone();
        no_wait.waiting_period_days = 0;
        let e = evaluate(&input(&c, &no_wait, "2025-12-31"));
        assert_eq!(codes(&e), [("NOT_STARTED", Some(d("2026-01-01")))]);
        assert!(evaluate(&input(&c, &no_wait, "2026-01-01")).is_eligible());
    }

    #[test]
    fn waiting_period_and_arrears_at_once() {
        let p = tg_complementary();
        let mut c = coverage(Layer::Complementary, Relationship::Principal);
        c.paid_through = None;
        let e = evaluate(&input(&c, &p, "2026-02-01"));
        assert_eq!(
            codes(&e),
            [
                ("WAITING_PERIOD", Some(d("2026-04-01"))),
                ("CONTRIBUTIONS_IN_ARREARS", None)
            ]
        );
    }

    #[test]
    fn the_grace_period_boundary_day_is_still_covered() {
        let p = tg_complementary();
        let mut c = coverage(Layer::Complementary, Relationship::Principal);
        c.paid_through = Some(d("2026-03-31"));
        // 2026-03-31 + 30 days = 2026-04-30: the last day of grace.
        assert!(evaluate(&input(&c, &p, "2026-04-30")).is_eligible());
        let e = evaluate(&input(&c, &p, "2026-05-01"));
        assert_eq!(codes(&e), [("CONTRIBUTIONS_IN_ARREARS", None)]);
        let mut no_grace = p.clone();
        no_grace.grace_period_days = 0;
        assert!(evaluate(&input(&c, &no_grace, "2026-04-01"))
            .reasons
            .iter()
            .any(|r| r.code == ReasonCode::ContributionsInArrears));
        c.paid_through = Some(d("2026-04-30"));
        assert!(evaluate(&input(&c, &no_grace, "2026-04-30")).is_eligible());
    }

    #[test]
    fn a_dependant_follows_the_principals_payments() {
        let p = tg_complementary();
        let mut c = coverage(Layer::Complementary, Relationship::Spouse);
        c.paid_through = None;
        let mut i = input(&c, &p, "2026-06-01");
        i.principal_paid_through = Some(d("2026-06-30"));
        assert!(evaluate(&i).is_eligible());
        i.principal_paid_through = None;
        assert!(evaluate(&i).has(ReasonCode::ContributionsInArrears));
        i.principal_paid_through = Some(d("2026-04-01"));
        assert!(evaluate(&i).has(ReasonCode::ContributionsInArrears));
        // A principal's own coverage ignores the field.
        let principal = coverage(Layer::Complementary, Relationship::Principal);
        let mut i = input(&principal, &p, "2026-06-01");
        i.principal_paid_through = Some(d("2020-01-01"));
        assert!(evaluate(&i).is_eligible());
    }

    #[test]
    fn a_dependant_stops_with_the_principals_coverage() {
        let p = tg_complementary();
        let c = coverage(Layer::Complementary, Relationship::Spouse);
        let mut i = input(&c, &p, "2026-06-01");
        let standing = |status, end: Option<&str>| {
            Some(PrincipalStanding {
                status,
                end_date: end.map(d),
            })
        };
        i.principal = standing(CoverageStatus::Active, None);
        assert!(evaluate(&i).is_eligible());
        i.principal = standing(CoverageStatus::Suspended, None);
        assert_eq!(codes(&evaluate(&i)), [("SUSPENDED", None)]);
        i.principal = standing(CoverageStatus::Terminated, Some("2026-05-31"));
        assert_eq!(codes(&evaluate(&i)), [("TERMINATED", None), ("ENDED", None)]);
        // The household was terminated after the service: the dependant's late claim is paid.
        i.principal = standing(CoverageStatus::Terminated, Some("2026-06-01"));
        assert!(evaluate(&i).is_eligible());
        // Ended on the service date itself: still covered that day.
        i.principal = standing(CoverageStatus::Active, Some("2026-06-01"));
        assert!(evaluate(&i).is_eligible());
        // Suspended twice over (the dependant's own row too): said once.
        let mut own = c.clone();
        own.status = CoverageStatus::Suspended;
        let mut i = input(&own, &p, "2026-06-01");
        i.principal = standing(CoverageStatus::Suspended, None);
        assert_eq!(codes(&evaluate(&i)), [("SUSPENDED", None)]);
        // A principal's own coverage ignores the field.
        let principal = coverage(Layer::Complementary, Relationship::Principal);
        let mut i = input(&principal, &p, "2026-06-01");
        i.principal = standing(CoverageStatus::Terminated, None);
        assert!(evaluate(&i).is_eligible());
    }

    #[test]
    fn status_and_end_date_reasons() {
        let p = tg_complementary();
        let mut c = coverage(Layer::Complementary, Relationship::Principal);
        c.status = CoverageStatus::Suspended;
        assert_eq!(codes(&evaluate(&input(&c, &p, "2026-06-01"))), [("SUSPENDED", None)]);
        c.status = CoverageStatus::Terminated;
        c.end_date = None;
        assert_eq!(codes(&evaluate(&input(&c, &p, "2026-06-30"))), [("TERMINATED", None)]);
        // Terminated after the service: a late claim for it is paid.
        c.end_date = Some(d("2026-06-30"));
        assert!(evaluate(&input(&c, &p, "2026-06-30")).is_eligible());
        assert_eq!(
            codes(&evaluate(&input(&c, &p, "2026-07-01"))),
            [("TERMINATED", None), ("ENDED", None)]
        );
        c.status = CoverageStatus::Active;
        assert!(evaluate(&input(&c, &p, "2026-06-30")).is_eligible());
        assert_eq!(codes(&evaluate(&input(&c, &p, "2026-07-01"))), [("ENDED", None)]);
    }

    #[test]
    fn what_the_product_does_not_pay_for() {
        let (p, c) = (
            tg_complementary(),
            coverage(Layer::Complementary, Relationship::Principal),
        );
        let mut i = input(&c, &p, "2026-06-01");
        i.category = Some(Category::Optical);
        let e = evaluate(&i);
        assert_eq!(codes(&e), [("EXCLUDED_CATEGORY", None)]);
        assert_eq!(e.rate_bp, None);
        // A 0 % rule is a carve-out: not covered.
        i.category = Some(Category::Consultation);
        i.care_level = CareLevel::UniversityHospital;
        assert_eq!(codes(&evaluate(&i)), [("NOT_COVERED", None)]);
        // Excluded and unmatched at once.
        i.category = Some(Category::Optical);
        assert_eq!(
            codes(&evaluate(&i)),
            [("NOT_COVERED", None), ("EXCLUDED_CATEGORY", None)]
        );
        // No version in force yet: nothing is covered.
        let mut none = input(&c, &p, "2026-06-01");
        none.product = None;
        let e = evaluate(&none);
        assert_eq!(codes(&e), [("NOT_COVERED", None)]);
        assert_eq!((e.rate_bp, e.remaining_ceiling_xof), (None, None));
    }

    #[test]
    fn a_check_without_a_category_needs_a_category_free_rule() {
        let c = coverage(Layer::Primary, Relationship::Principal);
        let mut p = tg_complementary();
        p.layer = Layer::Primary;
        p.rules.retain(|r| r.category.is_some());
        let mut i = input(&c, &p, "2026-06-01");
        i.category = None;
        assert_eq!(codes(&evaluate(&i)), [("NOT_COVERED", None)]);
        i.category = Some(Category::Pharmacy);
        assert_eq!(evaluate(&i).paying_rate(), Some(BasisPoints(5_000)));
    }

    #[test]
    fn the_ceiling_runs_out_until_next_plan_year() {
        let (p, c) = (
            tg_complementary(),
            coverage(Layer::Complementary, Relationship::Principal),
        );
        let mut i = input(&c, &p, "2026-11-15");
        i.complementary_used_xof = Xof(149_999);
        let e = evaluate(&i);
        assert!(e.is_eligible());
        assert_eq!(e.remaining_ceiling_xof, Some(Xof(1)));
        i.complementary_used_xof = Xof(150_000);
        let e = evaluate(&i);
        assert_eq!(codes(&e), [("CEILING_EXHAUSTED", Some(d("2027-01-01")))]);
        assert_eq!(e.remaining_ceiling_xof, Some(Xof::ZERO));
        // A ceiling lowered by a new version below what was already paid leaves 0, never less.
        i.complementary_used_xof = Xof(200_000);
        assert_eq!(evaluate(&i).remaining_ceiling_xof, Some(Xof::ZERO));
        assert_eq!(plan_year(d("2026-11-15")), (d("2026-01-01"), d("2026-12-31")));
        // A ceiling of 0 does not come back with the new plan year: no `until`.
        let mut nothing = tg_complementary();
        nothing.annual_ceiling_xof = Some(Xof::ZERO);
        let mut i = input(&c, &nothing, "2026-11-15");
        i.complementary_used_xof = Xof::ZERO;
        assert_eq!(codes(&evaluate(&i)), [("CEILING_EXHAUSTED", None)]);
    }

    #[test]
    fn a_child_over_the_age_limit() {
        let (p, c) = (tg_complementary(), coverage(Layer::Complementary, Relationship::Child));
        let mut i = input(&c, &p, "2026-06-14");
        i.principal_paid_through = Some(d("2026-12-31"));
        i.birth_date = d("2004-06-15");
        assert!(evaluate(&i).is_eligible());
        i.service_date = d("2026-06-15");
        assert_eq!(codes(&evaluate(&i)), [("DEPENDANT_AGE_LIMIT", None)]);
        // Born "2005": 21 all through 2026, 22 from 1 January 2027.
        i.birth_date = d("2005-01-01");
        i.birth_date_precision = BirthDatePrecision::Year;
        i.service_date = d("2026-12-31");
        assert!(evaluate(&i).is_eligible());
        i.service_date = d("2027-01-01");
        i.principal_paid_through = Some(d("2027-12-31"));
        assert_eq!(codes(&evaluate(&i)), [("DEPENDANT_AGE_LIMIT", None)]);
        // The limit is for children only.
        let spouse = coverage(Layer::Complementary, Relationship::Spouse);
        let mut i = input(&spouse, &p, "2026-06-15");
        i.principal_paid_through = Some(d("2026-12-31"));
        i.birth_date = d("1950-01-01");
        assert!(evaluate(&i).is_eligible());
    }

    #[test]
    fn a_base_coverage_is_eligible_by_status_and_dates_alone() {
        let p = inam_base();
        let mut c = coverage(Layer::Base, Relationship::Principal);
        c.paid_through = None;
        let mut i = input(&c, &p, "2026-01-01");
        i.complementary_used_xof = Xof(1_000_000);
        let e = evaluate(&i);
        assert!(e.is_eligible());
        assert_eq!((e.rate_bp, e.remaining_ceiling_xof), (Some(BasisPoints(8_000)), None));
        c.status = CoverageStatus::Suspended;
        assert_eq!(codes(&evaluate(&input(&c, &p, "2026-01-01"))), [("SUSPENDED", None)]);
        // Self-employed via CNSS: 90 days' waiting applies to a base product too.
        let mut cnss = inam_base();
        cnss.waiting_period_days = 90;
        c.status = CoverageStatus::Active;
        assert_eq!(
            codes(&evaluate(&input(&c, &cnss, "2026-02-01"))),
            [("WAITING_PERIOD", Some(d("2026-04-01")))]
        );
    }

    #[test]
    fn everything_wrong_at_once_comes_out_in_contract_order() {
        let p = tg_complementary();
        let mut c = coverage(Layer::Complementary, Relationship::Child);
        c.status = CoverageStatus::Terminated;
        c.end_date = Some(d("2025-06-30"));
        c.start_date = d("2026-01-01");
        c.paid_through = None;
        let mut i = input(&c, &p, "2025-12-01");
        i.care_level = CareLevel::UniversityHospital;
        i.category = Some(Category::Optical);
        i.complementary_used_xof = Xof(150_000);
        i.birth_date = d("1990-01-01");
        let got: Vec<&str> = evaluate(&i).reasons.iter().map(|r| r.code.as_str()).collect();
        // Every code but SUSPENDED, which a terminated coverage cannot also be.
        let expected: Vec<&str> = ReasonCode::ALL
            .iter()
            .filter(|c| **c != ReasonCode::Suspended)
            .map(|c| c.as_str())
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn household_rules_at_registration() {
        let p = tg_complementary();
        let start = d("2026-01-01");
        let child = |birth: &str, precision| DependantFacts {
            relationship: Relationship::Child,
            birth_date: d(birth),
            birth_date_precision: precision,
        };
        let ok = [
            child("2004-01-02", BirthDatePrecision::Day),
            child("2005-01-01", BirthDatePrecision::Year),
            DependantFacts {
                relationship: Relationship::Parent,
                birth_date: d("1940-01-01"),
                birth_date_precision: BirthDatePrecision::Year,
            },
        ];
        assert!(household_errors(&p, start, &ok).is_empty());
        let too_old = [
            child("2004-01-02", BirthDatePrecision::Day),
            child("2004-12-31", BirthDatePrecision::Year),
            child("2004-01-01", BirthDatePrecision::Day),
        ];
        let errors = household_errors(&p, start, &too_old);
        let got: Vec<(&str, &str)> = errors.iter().map(|e| (e.field.as_str(), e.code.as_str())).collect();
        // Born 2004-01-02: 21 on 2026-01-01. Born "2004" counts from 1 January: 22, as is 2004-01-01.
        assert_eq!(
            got,
            [
                ("/dependants/1/birth_date", "dependant_age_limit"),
                ("/dependants/2/birth_date", "dependant_age_limit")
            ]
        );
        let seven = vec![child("2020-01-01", BirthDatePrecision::Day); 7];
        let errors = household_errors(&p, start, &seven);
        assert_eq!(errors.len(), 1);
        assert_eq!(
            (errors[0].field.as_str(), errors[0].code.as_str()),
            ("/dependants", "too_many_dependants")
        );
        assert!(household_errors(&p, start, &seven[..6]).is_empty());
    }

    #[test]
    fn no_one_is_covered_before_birth() {
        let start = d("2026-01-01");
        // Born on the start date is covered, born the day after is not; a year-only birth date
        // only when its year is later.
        assert!(!born_after(d("2026-01-01"), BirthDatePrecision::Day, start));
        assert!(born_after(d("2026-01-02"), BirthDatePrecision::Day, start));
        assert!(!born_after(d("2026-07-01"), BirthDatePrecision::Year, start));
        assert!(born_after(d("2027-01-01"), BirthDatePrecision::Year, start));
        let e = born_after_start("/birth_date".into(), start);
        assert_eq!((e.field.as_str(), e.code.as_str()), ("/birth_date", "born_after_start"));
        assert!(e.fr.contains("2026-01-01") && e.en.contains("2026-01-01"));
    }

    fn arb_product() -> impl Strategy<Value = ProductVersion> {
        (
            prop::sample::select(Layer::ALL.to_vec()),
            prop::collection::vec(
                (
                    prop::option::of(prop::sample::select(CareLevel::ALL.to_vec())),
                    prop::option::of(prop::sample::select(Category::ALL.to_vec())),
                    prop_oneof![Just(0u32), 0u32..=10_000],
                ),
                0..6,
            ),
            // Half the products end their table with a rule for any care.
            prop::option::of(1u32..=10_000),
            prop::option::of(prop_oneof![0i64..300_000, 0i64..30_000]),
            0u32..400,
            0u32..120,
            prop::collection::vec(prop::sample::select(Category::ALL.to_vec()), 0..3),
            prop::option::of(0u32..30),
        )
            .prop_map(
                |(layer, rules, any_care, ceiling, waiting, grace, excluded, child_max_age)| {
                    let mut p = tg_complementary();
                    p.layer = layer;
                    p.rules = rules
                        .into_iter()
                        .chain(any_care.map(|rate| (None, None, rate)))
                        .map(|(care_level, category, rate)| Rule {
                            care_level,
                            category,
                            rate_bp: BasisPoints(rate),
                        })
                        .collect();
                    p.annual_ceiling_xof = ceiling.map(Xof);
                    p.waiting_period_days = waiting;
                    p.grace_period_days = grace;
                    p.excluded_categories = excluded;
                    p.child_max_age = child_max_age;
                    p
                },
            )
    }

    /// v1 as `tg_complementary`, and a v2 from `from` changed by `change`.
    fn successor(from: &str, change: impl FnOnce(&mut ProductVersion)) -> ProductVersion {
        let mut v2 = tg_complementary();
        v2.effective_from = d(from);
        v2.version = 2;
        change(&mut v2);
        v2
    }

    /// Arrears end with a payment, which no day foretells, or with a later version whose longer
    /// grace reaches the service date: then on the first day that version is in force.
    #[test]
    fn a_longer_grace_in_a_later_version_ends_the_arrears_when_it_starts() {
        let (v1, mut c) = (
            tg_complementary(),
            coverage(Layer::Complementary, Relationship::Principal),
        );
        c.paid_through = Some(d("2026-06-30"));
        // Paid through June, 30 days' grace: in arrears from 2026-07-31.
        let i = input(&c, &v1, "2026-09-15");
        assert_eq!(codes(&evaluate(&i)), [("CONTRIBUTIONS_IN_ARREARS", None)]);
        let until = |v2: ProductVersion| codes(&evaluate_with_later_versions(&i, &[v2]));
        let a_year = successor("2026-10-01", |v| v.grace_period_days = 365);
        assert_eq!(until(a_year), [("CONTRIBUTIONS_IN_ARREARS", Some(d("2026-10-01")))]);
        // 60 days reach 2026-08-29 only: still in arrears on 2026-10-01 and after.
        let too_short = successor("2026-10-01", |v| v.grace_period_days = 60);
        assert_eq!(until(too_short), [("CONTRIBUTIONS_IN_ARREARS", None)]);
        // Nothing paid at all: no grace ends that.
        c.paid_through = None;
        let i = input(&c, &v1, "2026-09-15");
        let a_year = successor("2026-10-01", |v| v.grace_period_days = 365);
        assert_eq!(
            codes(&evaluate_with_later_versions(&i, &[a_year])),
            [("CONTRIBUTIONS_IN_ARREARS", None)]
        );
    }

    #[test]
    fn a_shorter_waiting_period_in_a_later_version_ends_the_wait_when_it_starts() {
        let (v1, c) = (
            tg_complementary(),
            coverage(Layer::Complementary, Relationship::Principal),
        );
        let i = input(&c, &v1, "2026-01-20");
        let none: [ProductVersion; 0] = [];
        assert_eq!(evaluate_with_later_versions(&i, &none), evaluate(&i));
        assert_eq!(codes(&evaluate(&i)), [("WAITING_PERIOD", Some(d("2026-04-01")))]);
        let until = |v2: ProductVersion| codes(&evaluate_with_later_versions(&i, &[v2]));
        // 30 days from 2026-02-01: the 30 days are over by then, so the wait ends that day.
        let v2 = successor("2026-02-01", |v| v.waiting_period_days = 30);
        assert_eq!(until(v2.clone()), [("WAITING_PERIOD", Some(d("2026-02-01")))]);
        // The wait is over from then on: the day before, it is not.
        assert!(evaluate(&input(&c, &v2, "2026-02-01")).is_eligible());
        assert!(evaluate(&input(&c, &v1, "2026-01-31")).has(ReasonCode::WaitingPeriod));
        // 45 days from 2026-01-10: still waiting when v2 starts, over on 2026-02-15.
        let v2 = successor("2026-01-10", |v| v.waiting_period_days = 45);
        let i_early = input(&c, &v1, "2026-01-05");
        assert_eq!(
            codes(&evaluate_with_later_versions(&i_early, &[&v2])),
            [("WAITING_PERIOD", Some(d("2026-02-15")))]
        );
        // A longer wait from 2026-03-01 pushes the end back; one from after 04-01 changes nothing.
        let v2 = successor("2026-03-01", |v| v.waiting_period_days = 120);
        assert_eq!(until(v2), [("WAITING_PERIOD", Some(d("2026-05-01")))]);
        let v2 = successor("2026-05-01", |v| v.waiting_period_days = 10);
        assert_eq!(until(v2), [("WAITING_PERIOD", Some(d("2026-04-01")))]);
        // No waiting at all from 2026-03-01; and two versions, the later one decisive.
        let v2 = successor("2026-03-01", |v| v.waiting_period_days = 0);
        assert_eq!(until(v2), [("WAITING_PERIOD", Some(d("2026-03-01")))]);
        let v2 = successor("2026-02-01", |v| v.waiting_period_days = 120);
        let mut v3 = successor("2026-03-01", |v| v.waiting_period_days = 60);
        v3.version = 3;
        assert_eq!(
            codes(&evaluate_with_later_versions(&i, &[v3.clone(), v2.clone()])),
            [("WAITING_PERIOD", Some(d("2026-03-02")))]
        );
        // A version that is already in force on the service date is `input.product`'s business.
        let v0 = successor("2026-01-20", |v| v.waiting_period_days = 0);
        assert_eq!(evaluate_with_later_versions(&i, &[v0]), evaluate(&i));
    }

    #[test]
    fn a_later_version_can_bring_the_ceiling_back_before_the_new_plan_year() {
        let (v1, c) = (
            tg_complementary(),
            coverage(Layer::Complementary, Relationship::Principal),
        );
        let mut i = input(&c, &v1, "2026-11-15");
        i.complementary_used_xof = Xof(150_000);
        let until = |v2: ProductVersion| codes(&evaluate_with_later_versions(&i, &[v2]));
        assert_eq!(
            until(successor("2026-12-01", |v| v.annual_ceiling_xof = Some(Xof(150_001)))),
            [("CEILING_EXHAUSTED", Some(d("2026-12-01")))]
        );
        assert_eq!(
            until(successor("2026-12-01", |v| v.annual_ceiling_xof = None)),
            [("CEILING_EXHAUSTED", Some(d("2026-12-01")))]
        );
        // Still below what was used this year: the new plan year, as without it.
        assert_eq!(
            until(successor("2026-12-01", |v| v.annual_ceiling_xof = Some(Xof(100_000)))),
            [("CEILING_EXHAUSTED", Some(d("2027-01-01")))]
        );
        // A ceiling of 0 from 2026-12-01 never comes back, until a version lifts it.
        let zero = successor("2026-12-01", |v| v.annual_ceiling_xof = Some(Xof::ZERO));
        assert_eq!(until(zero.clone()), [("CEILING_EXHAUSTED", None)]);
        let mut lifted = successor("2027-03-01", |v| v.annual_ceiling_xof = Some(Xof(50_000)));
        lifted.version = 3;
        assert_eq!(
            codes(&evaluate_with_later_versions(&i, &[zero, lifted])),
            [("CEILING_EXHAUSTED", Some(d("2027-03-01")))]
        );
    }

    #[test]
    fn a_coverage_older_than_its_product_is_covered_from_the_first_version() {
        let c = coverage(Layer::Complementary, Relationship::Principal);
        let mut v1 = tg_complementary();
        v1.effective_from = d("2026-06-01");
        v1.waiting_period_days = 0;
        let mut i = input(&c, &v1, "2026-03-10");
        i.product = None;
        assert_eq!(codes(&evaluate(&i)), [("NOT_COVERED", None)]);
        assert_eq!(
            codes(&evaluate_with_later_versions(&i, &[&v1])),
            [("NOT_COVERED", Some(d("2026-06-01")))]
        );
        // A first version that does not cover the care either ends nothing.
        i.care_level = CareLevel::UniversityHospital;
        assert_eq!(
            codes(&evaluate_with_later_versions(&i, &[&v1])),
            [("NOT_COVERED", None)]
        );
        // An excluded category a later version covers: both reasons end with it.
        let (v1, mut v2) = (
            tg_complementary(),
            successor("2026-09-01", |v| v.excluded_categories.clear()),
        );
        v2.waiting_period_days = 0;
        let mut i = input(&c, &v1, "2026-06-01");
        i.category = Some(Category::Optical);
        assert_eq!(
            codes(&evaluate_with_later_versions(&i, &[v2])),
            [("EXCLUDED_CATEGORY", Some(d("2026-09-01")))]
        );
    }

    fn day(offset: i64) -> NaiveDate {
        d("2024-01-01") + chrono::Duration::days(offset)
    }

    /// One coverage of a product with its whole history, and the care asked about.
    #[derive(Debug, Clone)]
    struct Case {
        /// Oldest first: versions 1, 2, 3… from strictly later days, all of the coverage's layer.
        versions: Vec<ProductVersion>,
        coverage: Coverage,
        parts: EligibilityInputParts,
        /// The complementary shares counted under the coverage, each on its service date: none
        /// after the service date asked about, some in earlier plan years.
        ledger: Vec<(NaiveDate, Xof)>,
    }

    #[derive(Debug, Clone)]
    struct EligibilityInputParts {
        birth_date: NaiveDate,
        birth_date_precision: BirthDatePrecision,
        principal_paid_through: Option<NaiveDate>,
        principal: Option<PrincipalStanding>,
        service_date: NaiveDate,
        care_level: CareLevel,
        category: Option<Category>,
    }

    impl Case {
        /// The version in force on the service date.
        fn product(&self) -> Option<&ProductVersion> {
            select_version(&self.versions, self.parts.service_date)
        }

        fn later(&self) -> Vec<&ProductVersion> {
            let on = self.parts.service_date;
            self.versions.iter().filter(|v| v.effective_from > on).collect()
        }

        /// No `until` may name `day` (API.md §5): the coverage, or for a dependant the
        /// principal's, ends before it or was terminated without an end date, or the child is
        /// past the age limit of `product`, the version in force that day.
        fn never_reaches(&self, day: NaiveDate, product: Option<&ProductVersion>) -> bool {
            let mut ends = vec![(self.coverage.status, self.coverage.end_date)];
            if self.coverage.is_dependant() {
                ends.extend(self.parts.principal.map(|p| (p.status, p.end_date)));
            }
            let too_old = self.coverage.relationship == Relationship::Child
                && product
                    .and_then(|p| p.child_max_age)
                    .is_some_and(|max| age_on(self.parts.birth_date, self.parts.birth_date_precision, day) > max);
            too_old
                || ends.iter().any(|(status, end)| {
                    end.is_some_and(|end| end < day) || (end.is_none() && *status == CoverageStatus::Terminated)
                })
        }

        /// What the ledger holds in the plan year of `on`.
        fn used_in_plan_year_of(&self, on: NaiveDate) -> Xof {
            let year = plan_year(on);
            Xof(self
                .ledger
                .iter()
                .filter(|(when, _)| plan_year(*when) == year)
                .map(|(_, amount)| amount.0)
                .sum())
        }

        /// The input for a service on `on` priced with `product`, the usage being `on`'s plan year's.
        fn input<'a>(&'a self, product: Option<&'a ProductVersion>, on: NaiveDate) -> EligibilityInput<'a> {
            let x = &self.parts;
            EligibilityInput {
                coverage: &self.coverage,
                product,
                birth_date: x.birth_date,
                birth_date_precision: x.birth_date_precision,
                principal_paid_through: x.principal_paid_through,
                principal: x.principal,
                service_date: on,
                care_level: x.care_level,
                category: x.category,
                complementary_used_xof: self.used_in_plan_year_of(on),
            }
        }

        fn asked(&self) -> EligibilityInput<'_> {
            self.input(self.product(), self.parts.service_date)
        }
    }

    /// 0 to 4 versions of one layer, numbered in order, each starting after the one before or
    /// on or before it (superseding it).
    fn arb_history() -> impl Strategy<Value = (Layer, Vec<ProductVersion>)> {
        (
            prop::sample::select(Layer::ALL.to_vec()),
            -700i64..300,
            // A product without any version is rare: products are created with their first. A
            // gap of 0 or less supersedes the versions still scheduled from that day.
            prop_oneof![
                1 => prop::collection::vec((1i64..600, arb_product()), 0..1),
                6 => prop::collection::vec((prop_oneof![4 => 1i64..600, 1 => -300i64..=0], arb_product()), 1..5),
            ],
        )
            .prop_map(|(layer, first, specs)| {
                let mut from = first;
                let mut versions = Vec::new();
                for (n, (gap, mut v)) in (1u32..).zip(specs) {
                    v.layer = layer;
                    v.effective_from = day(from);
                    v.version = n;
                    versions.push(v);
                    from += gap;
                }
                (layer, versions)
            })
    }

    /// An end date anywhere, or within two days of the service date.
    #[derive(Debug, Clone, Copy)]
    enum End {
        At(i64),
        AroundService(i64),
    }

    impl End {
        fn day(self, service: i64) -> NaiveDate {
            match self {
                End::At(offset) => day(offset),
                End::AroundService(shift) => day(service + shift),
            }
        }
    }

    fn arb_end() -> impl Strategy<Value = End> {
        prop_oneof![
            (0i64..1_500).prop_map(End::At),
            (-2i64..=2).prop_map(End::AroundService)
        ]
    }

    fn arb_case() -> impl Strategy<Value = Case> {
        (
            arb_history(),
            prop::sample::select(Relationship::ALL.to_vec()),
            prop::sample::select(CoverageStatus::ALL.to_vec()),
            (0i64..1_500, prop::option::of(arb_end()), prop::option::of(0i64..1_500)),
            prop::option::of(0i64..1_500),
            prop::option::of((
                prop::sample::select(CoverageStatus::ALL.to_vec()),
                prop::option::of(arb_end()),
            )),
            (
                0i64..1_500,
                prop::sample::select(CareLevel::ALL.to_vec()),
                prop::option::of(prop::sample::select(Category::ALL.to_vec())),
                -10_000i64..1_500,
                any::<bool>(),
            ),
            // Often enough above the ceiling (up to 300 000) to exhaust it.
            prop::collection::vec((0i64..600, prop_oneof![0i64..120_000, 100_000i64..400_000]), 0..5),
        )
            .prop_map(
                |((layer, versions), relationship, status, own, principal_paid, principal, rest, ledger)| {
                    let (start, end, paid) = own;
                    let (service, care_level, category, birth, year_only) = rest;
                    let mut c = coverage(layer, relationship);
                    c.status = status;
                    c.start_date = day(start);
                    c.end_date = end.map(|end| end.day(service));
                    c.paid_through = paid.map(day);
                    let parts = EligibilityInputParts {
                        birth_date: day(birth),
                        birth_date_precision: if year_only {
                            BirthDatePrecision::Year
                        } else {
                            BirthDatePrecision::Day
                        },
                        principal_paid_through: principal_paid.map(day),
                        principal: principal.map(|(status, end)| PrincipalStanding {
                            status,
                            end_date: end.map(|end| end.day(service)),
                        }),
                        service_date: day(service),
                        care_level,
                        category,
                    };
                    let ledger = ledger
                        .into_iter()
                        .map(|(back, amount)| (day(service - back), Xof(amount)))
                        .collect();
                    Case {
                        versions,
                        coverage: c,
                        parts,
                        ledger,
                    }
                },
            )
    }

    /// SUSPENDED, TERMINATED and ENDED as API.md §5 states them: from the coverage's own status
    /// and end date and, for a dependant, the principal's too.
    fn expected_standing_reasons(case: &Case) -> [bool; 3] {
        let on = case.parts.service_date;
        let c = &case.coverage;
        let mut standings = vec![(c.status, c.end_date)];
        if c.is_dependant() {
            standings.extend(case.parts.principal.map(|p| (p.status, p.end_date)));
        }
        let suspended = standings.iter().any(|(s, _)| *s == CoverageStatus::Suspended);
        let terminated = standings
            .iter()
            .any(|(s, end)| *s == CoverageStatus::Terminated && !end.is_some_and(|end| on <= end));
        let ended = standings.iter().any(|(_, end)| end.is_some_and(|end| on > end));
        [suspended, terminated, ended]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn answers_are_consistent(case in arb_case()) {
            let e = evaluate(&case.asked());
            let on = case.parts.service_date;
            prop_assert_eq!(e.is_eligible(), e.reasons.is_empty());
            prop_assert!(e.reasons.windows(2).all(|w| w[0].code < w[1].code));
            prop_assert!(e.reasons.iter().all(|r| r.until.is_none_or(|u| u > on)));
            prop_assert_eq!(
                e.rate_bp.is_none(),
                e.has(ReasonCode::NotCovered) || e.has(ReasonCode::ExcludedCategory)
            );
            if case.coverage.layer == Layer::Base {
                prop_assert!(!e.has(ReasonCode::ContributionsInArrears));
                prop_assert!(!e.has(ReasonCode::CeilingExhausted));
                prop_assert_eq!(e.remaining_ceiling_xof, None);
            }
            let ceiling = case.product().and_then(|p| p.annual_ceiling_xof);
            if let (Some(left), Some(ceiling)) = (e.remaining_ceiling_xof, ceiling) {
                prop_assert!(left >= Xof::ZERO && left <= ceiling);
            }
            if e.is_eligible() {
                prop_assert!(e.paying_rate().is_some_and(|r| r.value() > 0));
            } else {
                prop_assert_eq!(e.paying_rate(), None);
            }
            // The household's standing: the principal's counts for a dependant, never for a principal.
            let [suspended, terminated, ended] = expected_standing_reasons(&case);
            prop_assert_eq!(e.has(ReasonCode::Suspended), suspended);
            prop_assert_eq!(e.has(ReasonCode::Terminated), terminated);
            prop_assert_eq!(e.has(ReasonCode::Ended), ended);
            if !case.coverage.is_dependant() {
                let mut alone = case.asked();
                alone.principal = None;
                prop_assert_eq!(&evaluate(&alone), &e);
            }
            // Before the product's first version nothing is covered, and nothing else is said
            // about the product.
            if case.product().is_none() {
                prop_assert!(e.has(ReasonCode::NotCovered));
                for code in [
                    ReasonCode::WaitingPeriod,
                    ReasonCode::ExcludedCategory,
                    ReasonCode::CeilingExhausted,
                    ReasonCode::DependantAgeLimit,
                ] {
                    prop_assert!(!e.has(code), "{:?} without a product", code);
                }
                prop_assert_eq!((e.rate_bp, e.remaining_ceiling_xof), (None, None));
            }
        }

        /// Under the version in force on the service date alone: each `until` is the day the
        /// contract names, the reason still holds the day before and no longer holds that day,
        /// with the usage of that day's plan year.
        #[test]
        fn a_reason_ends_on_its_until_day_and_not_before(case in arb_case()) {
            let on = case.parts.service_date;
            let product = case.product();
            let e = evaluate(&case.asked());
            for r in &e.reasons {
                let expected = match r.code {
                    ReasonCode::NotStarted => Some(case.coverage.start_date.max(earliest_birth(
                        case.parts.birth_date,
                        case.parts.birth_date_precision,
                    ))),
                    ReasonCode::WaitingPeriod => product.and_then(|p| {
                        case.coverage.start_date.checked_add_days(Days::new(p.waiting_period_days.into()))
                    }),
                    ReasonCode::CeilingExhausted
                        if product.and_then(|p| p.annual_ceiling_xof) > Some(Xof::ZERO) =>
                    {
                        NaiveDate::from_ymd_opt(on.year() + 1, 1, 1)
                    }
                    _ => None,
                };
                prop_assert_eq!(r.until, expected.filter(|day| !case.never_reaches(*day, product)), "{:?}", r.code);
                let Some(until) = r.until else { continue };
                if r.code == ReasonCode::CeilingExhausted {
                    prop_assert_eq!(case.used_in_plan_year_of(until), Xof::ZERO);
                }
                prop_assert!(
                    !evaluate(&case.input(product, until)).has(r.code),
                    "{:?} still holds on {}", r.code, until
                );
                let before = until.pred_opt().unwrap_or(until);
                prop_assert!(
                    evaluate(&case.input(product, before)).has(r.code),
                    "{:?} no longer holds on {}, before its until", r.code, before
                );
            }
        }

        /// With the versions that start later: the same answer, but a reason the versions time
        /// ends on the first day, found day by day, on which it no longer holds under the version
        /// in force that day.
        #[test]
        fn a_reason_the_versions_time_ends_on_the_first_day_it_no_longer_holds(case in arb_case()) {
            let on = case.parts.service_date;
            let plain = evaluate(&case.asked());
            let later = case.later();
            let e = evaluate_with_later_versions(&case.asked(), &later);
            if later.is_empty() {
                prop_assert_eq!(&e, &plain);
            }
            prop_assert_eq!(
                (e.status, e.rate_bp, e.remaining_ceiling_xof),
                (plain.status, plain.rate_bp, plain.remaining_ceiling_xof)
            );
            let plain_codes: Vec<ReasonCode> = plain.reasons.iter().map(|r| r.code).collect();
            prop_assert_eq!(e.reasons.iter().map(|r| r.code).collect::<Vec<_>>(), plain_codes);
            // Every day until every timed reason has ended, or past every day a version changes
            // anything (the last start, the last waiting period's end, the next plan year).
            let mut open: Vec<ReasonCode> =
                e.reasons.iter().map(|r| r.code).filter(|c| TIMED_BY_VERSIONS.contains(c)).collect();
            let mut ends: Vec<(ReasonCode, NaiveDate)> = Vec::new();
            let mut then = on;
            while !open.is_empty() && then < day(3_500) {
                then = then.succ_opt().unwrap_or(then);
                let answer = evaluate(&case.input(select_version(&case.versions, then), then));
                open.retain(|code| {
                    let over = !answer.has(*code);
                    if over {
                        ends.push((*code, then));
                    }
                    !over
                });
            }
            for (r, p) in e.reasons.iter().zip(&plain.reasons) {
                if TIMED_BY_VERSIONS.contains(&r.code) {
                    let expected = ends
                        .iter()
                        .find(|(code, _)| *code == r.code)
                        .map(|(_, when)| *when)
                        .filter(|day| !case.never_reaches(*day, select_version(&case.versions, *day)));
                    prop_assert_eq!(r.until, expected, "{:?}", r.code);
                } else if r.code == ReasonCode::NotStarted {
                    // The start, as without later versions, but a child's age limit on that day
                    // is the version's in force then.
                    let starts = case.coverage.start_date.max(earliest_birth(
                        case.parts.birth_date,
                        case.parts.birth_date_precision,
                    ));
                    let expected =
                        Some(starts).filter(|day| !case.never_reaches(*day, select_version(&case.versions, *day)));
                    prop_assert_eq!(r.until, expected, "{:?}", r.code);
                } else {
                    prop_assert_eq!(r.until, p.until, "{:?}", r.code);
                }
            }
        }

        #[test]
        fn age_never_decreases_and_year_precision_is_never_younger(
            birth in -20_000i64..2_000, a in 0i64..40_000, b in 0i64..40_000,
        ) {
            let (born, on1, on2) = (day(birth), day(a.min(b) - 20_000), day(a.max(b) - 20_000));
            for precision in BirthDatePrecision::ALL {
                prop_assert!(age_on(born, precision, on1) <= age_on(born, precision, on2));
            }
            prop_assert!(age_on(born, BirthDatePrecision::Year, on1) >= age_on(born, BirthDatePrecision::Day, on1));
        }
    }
}
