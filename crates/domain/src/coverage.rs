//! Coverages (API.md §5): one person's membership of one product, FHIR's Coverage.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::product::Layer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoverageStatus {
    Active,
    Suspended,
    Terminated,
}

impl CoverageStatus {
    pub const ALL: [CoverageStatus; 3] = [
        CoverageStatus::Active,
        CoverageStatus::Suspended,
        CoverageStatus::Terminated,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CoverageStatus::Active => "active",
            CoverageStatus::Suspended => "suspended",
            CoverageStatus::Terminated => "terminated",
        }
    }

    pub fn parse(s: &str) -> Option<CoverageStatus> {
        CoverageStatus::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// A member's place in the household that joined the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relationship {
    Principal,
    Spouse,
    Child,
    Parent,
    Other,
}

impl Relationship {
    pub const ALL: [Relationship; 5] = [
        Relationship::Principal,
        Relationship::Spouse,
        Relationship::Child,
        Relationship::Parent,
        Relationship::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Relationship::Principal => "principal",
            Relationship::Spouse => "spouse",
            Relationship::Child => "child",
            Relationship::Parent => "parent",
            Relationship::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Relationship> {
        Relationship::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// What a registration's `dependants[].relationship` accepts: every value but `principal`.
    pub fn parse_dependant(s: &str) -> Option<Relationship> {
        Relationship::parse(s).filter(|r| r.is_dependant())
    }

    pub fn is_dependant(self) -> bool {
        self != Relationship::Principal
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coverage {
    pub id: String,
    pub beneficiary: String,
    pub product: String,
    pub organization: String,
    pub layer: Layer,
    pub member_number: String,
    pub relationship: Relationship,
    /// The principal's coverage, for a dependant.
    pub principal_coverage: Option<String>,
    pub start_date: NaiveDate,
    /// The last day covered, when known.
    pub end_date: Option<NaiveDate>,
    pub status: CoverageStatus,
    /// The end of the latest contribution period paid on this coverage itself.
    pub paid_through: Option<NaiveDate>,
    /// Bumped by every change; the `ETag` of the coverage.
    #[serde(default)]
    pub version: u32,
}

impl Coverage {
    pub fn is_dependant(&self) -> bool {
        self.relationship.is_dependant()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabularies_serialize_as_the_contract_spells_them() {
        for s in CoverageStatus::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
            assert_eq!(CoverageStatus::parse(s.as_str()), Some(s));
        }
        for r in Relationship::ALL {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
            assert_eq!(Relationship::parse(r.as_str()), Some(r));
        }
        assert_eq!(CoverageStatus::parse("Active"), None);
        assert_eq!(Relationship::parse_dependant("principal"), None);
        assert_eq!(Relationship::parse_dependant("child"), Some(Relationship::Child));
    }

    #[test]
    fn coverages_round_trip_through_json() {
        let c = Coverage {
            id: "cov-2".into(),
            beneficiary: "ben-2".into(),
            product: "prod-1".into(),
            organization: "mut-tsevie".into(),
            layer: Layer::Complementary,
            member_number: "TSV-0042-2".into(),
            relationship: Relationship::Child,
            principal_coverage: Some("cov-1".into()),
            start_date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            end_date: None,
            status: CoverageStatus::Active,
            paid_through: None,
            version: 1,
        };
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["relationship"], "child");
        assert_eq!(json["status"], "active");
        assert_eq!(json["start_date"], "2026-01-01");
        assert!(c.is_dependant());
        assert_eq!(serde_json::from_value::<Coverage>(json).unwrap(), c);
    }
}

/// A payment towards a coverage for a period; `paid_through` follows the contributions not
/// cancelled as far as their periods join up (`paid_run`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contribution {
    pub id: String,
    pub coverage: String,
    pub amount_xof: crate::money::Xof,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub paid_at: NaiveDate,
    pub reference: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Set once, when a contribution recorded by mistake is cancelled; it then counts for nothing.
    #[serde(default)]
    pub cancelled_at: Option<chrono::DateTime<chrono::Utc>>,
}
