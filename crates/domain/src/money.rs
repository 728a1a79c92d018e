//! Money is an integer number of XOF (the CFA franc has no minor unit); rates are basis points.

use serde::{Deserialize, Serialize};

/// Largest amount the service accepts anywhere: 10^12 XOF. Far above any real care episode,
/// far below `i64::MAX`, so sums of a few thousand amounts cannot overflow.
pub const MAX_XOF: i64 = 1_000_000_000_000;

/// A whole number as people read it in a message: digits in groups of three from the right,
/// `1,000,000` in English and `1 000 000` in French (an ordinary space, as every space of the
/// French texts: API.md §4), so that a clerk need not count twelve zeros. Four digits and fewer
/// stay whole (`1000`), as both languages write them.
pub fn grouped(n: i64, separator: char) -> String {
    let digits = n.unsigned_abs().to_string();
    if digits.len() <= 4 {
        return n.to_string();
    }
    let mut out = String::with_capacity(digits.len() * 4 / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(separator);
        }
        out.push(d);
    }
    out
}

/// [`grouped`] for an English text.
pub fn grouped_en(n: i64) -> String {
    grouped(n, ',')
}

/// [`grouped`] for a French text.
pub fn grouped_fr(n: i64) -> String {
    grouped(n, ' ')
}

/// A whole number of West African CFA francs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Xof(pub i64);

impl Xof {
    pub const ZERO: Xof = Xof(0);

    pub fn value(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Xof) -> Option<Xof> {
        self.0.checked_add(other.0).map(Xof)
    }

    pub fn checked_sub(self, other: Xof) -> Option<Xof> {
        self.0.checked_sub(other.0).map(Xof)
    }

    pub fn checked_mul(self, quantity: i64) -> Option<Xof> {
        self.0.checked_mul(quantity).map(Xof)
    }

    /// `floor(self × rate / 10000)` — the one rounding rule of API.md §6. Computed in i128 so
    /// that no amount up to `MAX_XOF` can overflow; a negative amount rounds towards −∞ too.
    pub fn apply_rate(self, rate: BasisPoints) -> Xof {
        let product = i128::from(self.0) * i128::from(rate.0);
        let floored = product.div_euclid(10_000);
        Xof(i64::try_from(floored).unwrap_or(i64::MAX))
    }
}

impl std::fmt::Display for Xof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} XOF", self.0)
    }
}

/// A rate in basis points: 10000 = 100 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BasisPoints(pub u32);

impl BasisPoints {
    pub const FULL: BasisPoints = BasisPoints(10_000);

    /// Accepts 0..=10000 only.
    pub fn new(value: i64) -> Option<BasisPoints> {
        u32::try_from(value).ok().filter(|v| *v <= 10_000).map(BasisPoints)
    }

    pub fn value(self) -> u32 {
        self.0
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn numbers_in_messages_are_grouped_by_three() {
        assert_eq!(grouped_en(1_000_000_000_000), "1,000,000,000,000");
        assert_eq!(grouped_fr(1_000_000_000_000), "1 000 000 000 000");
        assert_eq!(grouped_fr(10_000), "10 000");
        assert_eq!(grouped_en(123_456), "123,456");
        assert_eq!(grouped_en(-12_345), "-12,345");
        assert_eq!(grouped_fr(1000), "1000");
        assert_eq!(grouped_en(0), "0");
        assert_eq!(grouped_en(i64::MIN), "-9,223,372,036,854,775,808");
    }

    use super::*;

    #[test]
    fn rate_application_floors() {
        assert_eq!(Xof(10_001).apply_rate(BasisPoints(8_000)), Xof(8_000));
        assert_eq!(Xof(3).apply_rate(BasisPoints(5_000)), Xof(1));
        assert_eq!(Xof(MAX_XOF).apply_rate(BasisPoints::FULL), Xof(MAX_XOF));
        assert_eq!(Xof(0).apply_rate(BasisPoints(7_777)), Xof(0));
    }

    #[test]
    fn subtraction_and_display_are_exact() {
        // 10 001 billed less INAM's 8 000: 2 001 left; a difference past i64 is refused.
        assert_eq!(Xof(10_001).checked_sub(Xof(8_000)), Some(Xof(2_001)));
        assert_eq!(Xof(i64::MIN).checked_sub(Xof(1)), None);
        assert_eq!(Xof(10_001).to_string(), "10001 XOF");
    }

    #[test]
    fn basis_points_are_bounded() {
        assert_eq!(BasisPoints::new(10_000), Some(BasisPoints(10_000)));
        assert_eq!(BasisPoints::new(10_001), None);
        assert_eq!(BasisPoints::new(-1), None);
    }
}
