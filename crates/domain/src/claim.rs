//! Claims (API.md §5 Claims): their states, who may move them, and how each line is priced and
//! re-priced. Storage runs these functions inside the transaction that locks the person's
//! complementary usage, so concurrent claims can never pass a ceiling.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::coordination::{
    adjudicate_line, split_claim, Adjudication, AdjudicationReason, BaseShare, LineInput, Shares,
};
use crate::eligibility::Reason;
use crate::money::{BasisPoints, Xof};
use crate::product::{CareLevel, Category};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    AwaitingBase,
    AwaitingComplementary,
    Adjudicated,
    Settled,
    Rejected,
    Cancelled,
}

impl ClaimStatus {
    pub const ALL: [ClaimStatus; 6] = [
        ClaimStatus::AwaitingBase,
        ClaimStatus::AwaitingComplementary,
        ClaimStatus::Adjudicated,
        ClaimStatus::Settled,
        ClaimStatus::Rejected,
        ClaimStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClaimStatus::AwaitingBase => "awaiting_base",
            ClaimStatus::AwaitingComplementary => "awaiting_complementary",
            ClaimStatus::Adjudicated => "adjudicated",
            ClaimStatus::Settled => "settled",
            ClaimStatus::Rejected => "rejected",
            ClaimStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<ClaimStatus> {
        ClaimStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether the claim's complementary shares count against the ceiling.
    pub fn counts_against_ceiling(self) -> bool {
        !matches!(self, ClaimStatus::Rejected | ClaimStatus::Cancelled)
    }
}

/// Who is acting on a claim, relative to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Submitter,
    BasePayer,
    RoutedMutuelle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    BaseAdjudicate,
    Adjudicate,
    Cancel,
    Settle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionError {
    /// This party may not make this move on any claim (403).
    NotAllowed,
    /// Not from the claim's current state (409).
    IllegalState(ClaimStatus),
}

/// The state machine: every legal move, who may make it, and where it leads. Anything else is an
/// error; the role is checked before the state, as the contract asks.
pub fn next_status(
    current: ClaimStatus,
    transition: Transition,
    role: Role,
    has_complementary: bool,
) -> Result<ClaimStatus, TransitionError> {
    use ClaimStatus::*;
    let allowed_role = match transition {
        Transition::BaseAdjudicate => role == Role::BasePayer,
        Transition::Adjudicate | Transition::Settle => role == Role::RoutedMutuelle,
        Transition::Cancel => role == Role::Submitter,
    };
    if !allowed_role {
        return Err(TransitionError::NotAllowed);
    }
    match (transition, current) {
        (Transition::BaseAdjudicate, AwaitingBase) => Ok(if has_complementary {
            AwaitingComplementary
        } else {
            Adjudicated
        }),
        (Transition::Adjudicate, AwaitingComplementary) => Ok(Adjudicated),
        (Transition::Cancel, AwaitingBase | AwaitingComplementary) => Ok(Cancelled),
        (Transition::Settle, Adjudicated) => Ok(Settled),
        (_, state) => Err(TransitionError::IllegalState(state)),
    }
}

/// One priced line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClaimLine {
    /// From 1, in request order (FHIR's `sequence`).
    pub line: u32,
    pub code: String,
    pub category: Category,
    pub description: Option<String>,
    pub quantity: i64,
    pub unit_price_xof: Xof,
    pub shares: Shares,
    /// The base rate and complementary rate the line was priced with (`None` = no such payer).
    pub base_rate: Option<BasisPoints>,
    pub complementary_rate: Option<BasisPoints>,
    /// The base scheme's own amount, when it adjudicated.
    pub base_adjudicated: Option<Xof>,
    pub decision: Option<crate::coordination::Decision>,
    pub reason_code: Option<AdjudicationReason>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub id: String,
    pub external_id: String,
    pub provider: String,
    /// The organisation that submitted it: the provider, or a scheme forwarding it.
    pub submitter: String,
    pub beneficiary: String,
    pub service_date: NaiveDate,
    pub care_level: CareLevel,
    pub diagnoses: Vec<String>,
    pub status: ClaimStatus,
    pub base_payer: Option<String>,
    pub base_coverage: Option<String>,
    pub routed_to: Option<String>,
    pub complementary_coverage: Option<String>,
    /// The complementary product's annual ceiling, when it has one.
    pub ceiling_xof: Option<Xof>,
    pub reasons: Vec<Reason>,
    pub lines: Vec<ClaimLine>,
    pub totals: Shares,
    pub settlement: Option<String>,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The ceiling left for a claim: the product's ceiling minus what other claims already use.
pub fn ceiling_left(ceiling: Option<Xof>, used_by_others: Xof) -> Option<Xof> {
    ceiling.map(|c| Xof((c.value() - used_by_others.value()).max(0)))
}

/// Prices (or re-prices) every line from its bill, its base (rate or adjudicated amount) and the
/// complementary rate, consuming `ceiling_left` line by line. Decisions already taken are kept.
pub fn price_lines(
    lines: &mut [ClaimLine],
    ceiling_left: Option<Xof>,
) -> Result<Shares, crate::coordination::CoordinationError> {
    let inputs: Vec<LineInput> = lines
        .iter()
        .map(|l| LineInput {
            billed_xof: l.shares.billed_xof,
            base: match (l.base_adjudicated, l.base_rate) {
                (Some(amount), _) => BaseShare::Adjudicated(amount),
                (None, Some(rate)) => BaseShare::Rate(rate),
                (None, None) => BaseShare::None,
            },
            complementary_rate: l.complementary_rate,
        })
        .collect();
    let split = split_claim(&inputs, ceiling_left)?;
    for (line, priced) in lines.iter_mut().zip(split.lines) {
        line.shares = priced.shares;
    }
    Ok(split.totals)
}

/// Applies the routed mutuelle's decision to each line (all lines, each once).
pub fn apply_decisions(
    lines: &mut [ClaimLine],
    decisions: &[(u32, Adjudication, Option<AdjudicationReason>)],
) -> Result<Shares, crate::coordination::CoordinationError> {
    let mut totals = Shares::default();
    for line in lines.iter_mut() {
        if let Some((_, adjudication, reason)) = decisions.iter().find(|(n, _, _)| *n == line.line) {
            let result = adjudicate_line(line.shares, *adjudication)?;
            line.shares = result.shares;
            line.decision = Some(adjudication.decision());
            line.reason_code = *reason;
        }
        totals = Shares {
            billed_xof: Xof(totals.billed_xof.value() + line.shares.billed_xof.value()),
            base_xof: Xof(totals.base_xof.value() + line.shares.base_xof.value()),
            complementary_xof: Xof(totals.complementary_xof.value() + line.shares.complementary_xof.value()),
            patient_xof: Xof(totals.patient_xof.value() + line.shares.patient_xof.value()),
        };
    }
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClaimStatus::*;

    #[test]
    fn every_legal_move_and_no_other() {
        let moves = [
            (
                AwaitingBase,
                Transition::BaseAdjudicate,
                Role::BasePayer,
                true,
                Ok(AwaitingComplementary),
            ),
            (
                AwaitingBase,
                Transition::BaseAdjudicate,
                Role::BasePayer,
                false,
                Ok(Adjudicated),
            ),
            (
                AwaitingComplementary,
                Transition::Adjudicate,
                Role::RoutedMutuelle,
                true,
                Ok(Adjudicated),
            ),
            (AwaitingBase, Transition::Cancel, Role::Submitter, true, Ok(Cancelled)),
            (
                AwaitingComplementary,
                Transition::Cancel,
                Role::Submitter,
                true,
                Ok(Cancelled),
            ),
            (Adjudicated, Transition::Settle, Role::RoutedMutuelle, true, Ok(Settled)),
            (
                Adjudicated,
                Transition::Cancel,
                Role::Submitter,
                true,
                Err(TransitionError::IllegalState(Adjudicated)),
            ),
            (
                Settled,
                Transition::Adjudicate,
                Role::RoutedMutuelle,
                true,
                Err(TransitionError::IllegalState(Settled)),
            ),
            (
                AwaitingBase,
                Transition::Adjudicate,
                Role::RoutedMutuelle,
                true,
                Err(TransitionError::IllegalState(AwaitingBase)),
            ),
            (
                AwaitingComplementary,
                Transition::Adjudicate,
                Role::Submitter,
                true,
                Err(TransitionError::NotAllowed),
            ),
            (
                Rejected,
                Transition::Cancel,
                Role::BasePayer,
                true,
                Err(TransitionError::NotAllowed),
            ),
        ];
        for (from, t, role, comp, expected) in moves {
            assert_eq!(next_status(from, t, role, comp), expected, "{from:?} {t:?} {role:?}");
        }
        for s in ClaimStatus::ALL {
            assert_eq!(ClaimStatus::parse(s.as_str()), Some(s));
        }
    }

    fn line(n: u32, billed: i64, base: Option<u32>, comp: Option<u32>) -> ClaimLine {
        ClaimLine {
            line: n,
            code: format!("C{n}"),
            category: Category::Consultation,
            description: None,
            quantity: 1,
            unit_price_xof: Xof(billed),
            shares: Shares {
                billed_xof: Xof(billed),
                ..Shares::default()
            },
            base_rate: base.map(BasisPoints),
            complementary_rate: comp.map(BasisPoints),
            base_adjudicated: None,
            decision: None,
            reason_code: None,
        }
    }

    #[test]
    fn a_base_adjudication_reprices_the_remainder() {
        let mut lines = vec![
            line(1, 10_001, Some(8000), Some(10_000)),
            line(2, 3_333, Some(8000), Some(5_000)),
        ];
        let totals = price_lines(&mut lines, None).unwrap();
        assert_eq!(totals.base_xof, Xof(8000 + 2666));
        assert_eq!(lines[1].shares.complementary_xof, Xof(333));
        lines[0].base_adjudicated = Some(Xof(5000));
        let totals = price_lines(&mut lines, None).unwrap();
        assert_eq!(lines[0].shares.complementary_xof, Xof(5001));
        assert_eq!(totals.billed_xof, Xof(13_334));
        assert_eq!(
            totals.base_xof.value() + totals.complementary_xof.value() + totals.patient_xof.value(),
            13_334
        );
    }

    #[test]
    fn the_ceiling_is_consumed_line_by_line() {
        let mut lines = vec![line(1, 6000, None, Some(10_000)), line(2, 6000, None, Some(10_000))];
        let totals = price_lines(&mut lines, ceiling_left(Some(Xof(10_000)), Xof(1_000))).unwrap();
        assert_eq!(lines[0].shares.complementary_xof, Xof(6000));
        assert_eq!(lines[1].shares.complementary_xof, Xof(3000));
        assert_eq!(totals.patient_xof, Xof(3000));
    }

    #[test]
    fn every_claim_but_a_rejected_or_cancelled_one_uses_the_ceiling() {
        // API.md §6.3: the year's total counts every claim not rejected or cancelled.
        for s in ClaimStatus::ALL {
            assert_eq!(s.counts_against_ceiling(), !matches!(s, Rejected | Cancelled), "{s:?}");
        }
    }

    #[test]
    fn each_decision_applies_to_its_own_line_and_the_totals_add_up() {
        // Line 1: 10 000 at INAM's 80 % (base 8 000), the mutuelle 100 % of the 2 000 left.
        // Line 2: 3 000 with no base, the mutuelle 50 %: 1 500, patient 1 500.
        let mut lines = vec![
            line(1, 10_000, Some(8_000), Some(10_000)),
            line(2, 3_000, None, Some(5_000)),
        ];
        price_lines(&mut lines, None).unwrap();
        // Decided in the other order: line 2 accepted, line 1 reduced to 500 (1 500 moves to
        // the patient).
        let totals = apply_decisions(
            &mut lines,
            &[
                (2, Adjudication::Accept, None),
                (
                    1,
                    Adjudication::Reduce { approved_xof: Xof(500) },
                    Some(AdjudicationReason::TariffExceeded),
                ),
            ],
        )
        .unwrap();
        let parts = |s: Shares| {
            (
                s.billed_xof.value(),
                s.base_xof.value(),
                s.complementary_xof.value(),
                s.patient_xof.value(),
            )
        };
        assert_eq!(parts(lines[0].shares), (10_000, 8_000, 500, 1_500));
        assert_eq!(lines[0].decision, Some(crate::coordination::Decision::Reduce));
        assert_eq!(lines[0].reason_code, Some(AdjudicationReason::TariffExceeded));
        assert_eq!(parts(lines[1].shares), (3_000, 0, 1_500, 1_500));
        assert_eq!(lines[1].decision, Some(crate::coordination::Decision::Accept));
        assert_eq!(lines[1].reason_code, None);
        assert_eq!(parts(totals), (13_000, 8_000, 2_000, 3_000));
    }

    #[test]
    fn decisions_only_lower_the_complementary_share() {
        let mut lines = vec![line(1, 1000, None, Some(10_000)), line(2, 1000, None, Some(10_000))];
        price_lines(&mut lines, None).unwrap();
        let totals = apply_decisions(
            &mut lines,
            &[
                (1, Adjudication::Reduce { approved_xof: Xof(400) }, None),
                (2, Adjudication::Reject, Some(AdjudicationReason::NotJustified)),
            ],
        )
        .unwrap();
        assert_eq!(totals.complementary_xof, Xof(400));
        assert_eq!(totals.patient_xof, Xof(1600));
        assert!(apply_decisions(
            &mut lines,
            &[(1, Adjudication::Reduce { approved_xof: Xof(500) }, None)]
        )
        .is_err());
    }
}
