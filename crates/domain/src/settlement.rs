//! Settlement batches (*bordereaux*): what a mutuelle owes one payee for a period, and the
//! payments that settle it, which add up and never pass the total.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::money::Xof;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SettlementStatus {
    Open,
    PartiallyPaid,
    Paid,
}

impl SettlementStatus {
    pub const ALL: [SettlementStatus; 3] = [
        SettlementStatus::Open,
        SettlementStatus::PartiallyPaid,
        SettlementStatus::Paid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SettlementStatus::Open => "open",
            SettlementStatus::PartiallyPaid => "partially_paid",
            SettlementStatus::Paid => "paid",
        }
    }

    pub fn parse(s: &str) -> Option<SettlementStatus> {
        SettlementStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub id: String,
    pub amount_xof: Xof,
    pub paid_at: NaiveDate,
    pub reference: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub id: String,
    pub mutuelle: String,
    pub payee: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub status: SettlementStatus,
    pub claims: Vec<String>,
    pub total_xof: Xof,
    pub paid_xof: Xof,
    pub payments: Vec<Payment>,
    pub created_at: DateTime<Utc>,
}

/// A settlement as a list shows it: without its claims and payments, which can be many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementSummary {
    pub id: String,
    pub mutuelle: String,
    pub payee: String,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub status: SettlementStatus,
    pub claim_count: u64,
    pub total_xof: Xof,
    pub paid_xof: Xof,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentRefusal {
    /// The batch is already paid in full (409).
    AlreadyPaid,
    /// The payment would pass the total; `due` is what is still owed (422).
    Overpayment { due: Xof },
}

/// The most a batch may total: 2^53 − 1 XOF, the largest integer a JSON reader that keeps numbers
/// as doubles (JavaScript, spreadsheets) reads exactly. No other amount comes near it (each is at
/// most 10^12); a batch would need some nine thousand claims at that limit.
pub const MAX_BATCH_XOF: i64 = (1 << 53) - 1;

/// A batch's total: what its claims owe together, or `None` when that passes [`MAX_BATCH_XOF`].
pub fn batch_total(owed: impl IntoIterator<Item = Xof>) -> Option<Xof> {
    owed.into_iter()
        .try_fold(Xof(0), Xof::checked_add)
        .filter(|total| total.value() <= MAX_BATCH_XOF)
}

/// Adds a payment: the new paid amount and status, or why it is refused.
pub fn pay(total: Xof, paid: Xof, amount: Xof) -> Result<(Xof, SettlementStatus), PaymentRefusal> {
    if paid >= total {
        return Err(PaymentRefusal::AlreadyPaid);
    }
    let due = Xof(total.value() - paid.value());
    if amount > due {
        return Err(PaymentRefusal::Overpayment { due });
    }
    let now_paid = Xof(paid.value() + amount.value());
    let status = if now_paid == total {
        SettlementStatus::Paid
    } else {
        SettlementStatus::PartiallyPaid
    };
    Ok((now_paid, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_total_that_would_wrap_is_refused() {
        assert_eq!(batch_total([Xof(1), Xof(2), Xof(0)]), Some(Xof(3)));
        assert_eq!(batch_total([]), Some(Xof(0)));
        let limit = Xof(1_000_000_000_000);
        assert_eq!(
            batch_total(std::iter::repeat_n(limit, 9_007)),
            Some(Xof(9_007 * 1_000_000_000_000))
        );
        assert_eq!(batch_total(std::iter::repeat_n(limit, 9_008)), None);
        // 2^53 − 1 exactly, and one franc more; and sums that would wrap an i64.
        assert_eq!(
            batch_total([Xof(MAX_BATCH_XOF - 5), Xof(5)]),
            Some(Xof(9_007_199_254_740_991))
        );
        assert_eq!(batch_total([Xof(MAX_BATCH_XOF), Xof(1)]), None);
        assert_eq!(batch_total(std::iter::repeat_n(limit, 9_223_373)), None);
    }

    #[test]
    fn instalments_add_up_to_the_franc() {
        let total = Xof(100_001);
        let (paid, status) = pay(total, Xof(0), Xof(50_000)).unwrap();
        assert_eq!((paid, status), (Xof(50_000), SettlementStatus::PartiallyPaid));
        assert_eq!(
            pay(total, paid, Xof(50_002)),
            Err(PaymentRefusal::Overpayment { due: Xof(50_001) })
        );
        let (paid, status) = pay(total, paid, Xof(50_001)).unwrap();
        assert_eq!((paid, status), (total, SettlementStatus::Paid));
        assert_eq!(pay(total, paid, Xof(1)), Err(PaymentRefusal::AlreadyPaid));
        assert_eq!(
            SettlementStatus::parse("partially_paid"),
            Some(SettlementStatus::PartiallyPaid)
        );
    }
}
