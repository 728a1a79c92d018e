//! Money is an integer number of XOF (the CFA franc has no minor unit); rates are basis points.

use serde::{Deserialize, Serialize};

/// Largest amount the service accepts anywhere: 10^12 XOF. Far above any real care episode,
/// far below `i64::MAX`, so sums of a few thousand amounts cannot overflow.
pub const MAX_XOF: i64 = 1_000_000_000_000;

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
    use super::*;

    #[test]
    fn rate_application_floors() {
        assert_eq!(Xof(10_001).apply_rate(BasisPoints(8_000)), Xof(8_000));
        assert_eq!(Xof(3).apply_rate(BasisPoints(5_000)), Xof(1));
        assert_eq!(Xof(MAX_XOF).apply_rate(BasisPoints::FULL), Xof(MAX_XOF));
        assert_eq!(Xof(0).apply_rate(BasisPoints(7_777)), Xof(0));
    }

    #[test]
    fn basis_points_are_bounded() {
        assert_eq!(BasisPoints::new(10_000), Some(BasisPoints(10_000)));
        assert_eq!(BasisPoints::new(10_001), None);
        assert_eq!(BasisPoints::new(-1), None);
    }
}
