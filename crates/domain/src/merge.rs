//! One person registered twice, made one (`POST /v1/beneficiaries/{id}/merge`).
//!
//! Coordination of benefits needs the base coverage and the mutuelle's on one person: a
//! mutuelle that registered a member without a national id, before or after the scheme
//! affiliated them with one, holds a second record of the same person, and a check by national
//! id then finds the base coverage alone. A merge moves the coverages of the record merged away
//! (`from`) to the person it is merged into (`into`), whose names, national id and identity are
//! kept. These are the rules; the storage applies them to rows it holds locked.

use crate::beneficiary::Beneficiary;
use crate::coverage::{Coverage, CoverageStatus};

/// Why `from` may not be merged into `into`; each is the `constraint` of a 409 `Conflict`,
/// whose code the API answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeRefusal {
    /// Both name one record.
    SamePerson,
    /// `from` was merged already (into someone else, or into `into` by a request that
    /// committed first).
    AlreadyMerged,
    /// The person merged into was merged into another one meanwhile: merge into that one.
    IntoMerged,
    /// `from` holds a national id: a record with one is the one others merge into, since
    /// registrations and affiliations find the person by it.
    HasNationalId,
    /// Another sex, or a birth date that cannot be the same (as a national id's match is judged).
    IdentityMismatch,
    /// `from` is covered by another organisation too: its coverages are not the caller's to move.
    CoveredByOthers,
    /// Both hold a live coverage of one product: a person holds a product once at a time.
    /// Terminate one of the two first.
    AlreadyCovered,
}

impl MergeRefusal {
    pub fn constraint(self) -> &'static str {
        match self {
            MergeRefusal::SamePerson => "same_person",
            MergeRefusal::AlreadyMerged => "already_merged",
            MergeRefusal::IntoMerged => "into_merged",
            MergeRefusal::HasNationalId => "has_national_id",
            MergeRefusal::IdentityMismatch => "identity_mismatch",
            MergeRefusal::CoveredByOthers => "covered_by_others",
            MergeRefusal::AlreadyCovered => "already_covered",
        }
    }
}

/// Whether `organization` may merge `from` (with its coverages `from_coverages`) into `into`
/// (with `into_coverages`). The first refusal that applies, in the order of [`MergeRefusal`].
pub fn check_merge(
    organization: &str,
    from: &Beneficiary,
    from_coverages: &[Coverage],
    into: &Beneficiary,
    into_coverages: &[Coverage],
) -> Result<(), MergeRefusal> {
    if from.id == into.id {
        return Err(MergeRefusal::SamePerson);
    }
    if from.merged_into.is_some() {
        return Err(MergeRefusal::AlreadyMerged);
    }
    if into.merged_into.is_some() {
        return Err(MergeRefusal::IntoMerged);
    }
    if from.national_id.is_some() {
        return Err(MergeRefusal::HasNationalId);
    }
    if !from.identity().agrees_with(&into.identity()) {
        return Err(MergeRefusal::IdentityMismatch);
    }
    if from_coverages.iter().any(|c| c.organization != organization) {
        return Err(MergeRefusal::CoveredByOthers);
    }
    let live = |c: &&Coverage| c.status != CoverageStatus::Terminated;
    let clash = from_coverages
        .iter()
        .filter(live)
        .any(|a| into_coverages.iter().filter(live).any(|b| b.product == a.product));
    if clash {
        return Err(MergeRefusal::AlreadyCovered);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::beneficiary::{NationalId, Sex};
    use crate::coverage::Relationship;
    use crate::eligibility::BirthDatePrecision;
    use crate::product::Layer;
    use chrono::{DateTime, NaiveDate, Utc};

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn person(id: &str, nid: bool, birth: &str, precision: BirthDatePrecision) -> Beneficiary {
        Beneficiary {
            id: id.into(),
            national_id: nid.then(|| NationalId {
                country: "TG".into(),
                id_type: "NIU".into(),
                value: "123456789012".into(),
            }),
            family_name: "Agbéko".into(),
            given_names: "Kossi".into(),
            sex: Sex::M,
            birth_date: d(birth),
            birth_date_precision: precision,
            phone: None,
            locality: None,
            created_at: DateTime::<Utc>::default(),
            version: 1,
            merged_into: None,
            merged_by: None,
            erased_at: None,
        }
    }

    fn coverage(id: &str, organization: &str, product: &str, status: CoverageStatus) -> Coverage {
        Coverage {
            id: id.into(),
            beneficiary: String::new(),
            product: product.into(),
            organization: organization.into(),
            layer: Layer::Complementary,
            member_number: id.into(),
            relationship: Relationship::Principal,
            principal_coverage: None,
            start_date: d("2026-01-01"),
            end_date: None,
            status,
            paid_through: None,
            version: 1,
        }
    }

    #[test]
    fn a_mutuelles_record_merges_into_the_schemes() {
        let from = person("a", false, "1980-01-01", BirthDatePrecision::Year);
        let into = person("b", true, "1980-06-14", BirthDatePrecision::Day);
        let mine = [coverage("c1", "mut-a", "p-comp", CoverageStatus::Active)];
        let theirs = [coverage("c2", "inam", "p-base", CoverageStatus::Active)];
        assert_eq!(check_merge("mut-a", &from, &mine, &into, &theirs), Ok(()));
    }

    #[test]
    fn each_refusal_in_turn() {
        let year = BirthDatePrecision::Year;
        let day = BirthDatePrecision::Day;
        let from = person("a", false, "1980-01-01", year);
        let into = person("b", true, "1980-06-14", day);
        let mine = [coverage("c1", "mut-a", "p", CoverageStatus::Active)];
        let none: [Coverage; 0] = [];
        let check = |from: &Beneficiary, fc: &[Coverage], into: &Beneficiary, ic: &[Coverage]| {
            check_merge("mut-a", from, fc, into, ic)
        };
        assert_eq!(check(&from, &mine, &from, &mine), Err(MergeRefusal::SamePerson));
        let merged = Beneficiary {
            merged_into: Some("z".into()),
            ..from.clone()
        };
        assert_eq!(check(&merged, &none, &into, &none), Err(MergeRefusal::AlreadyMerged));
        // A target merged away meanwhile: the record merged from is told before it is judged.
        let moved_on = Beneficiary {
            merged_into: Some("z".into()),
            ..into.clone()
        };
        assert_eq!(check(&from, &mine, &moved_on, &none), Err(MergeRefusal::IntoMerged));
        assert_eq!(
            check(&merged, &none, &moved_on, &none),
            Err(MergeRefusal::AlreadyMerged)
        );
        let with_id = person("a", true, "1980-01-01", year);
        assert_eq!(check(&with_id, &mine, &into, &none), Err(MergeRefusal::HasNationalId));
        // Another year, or another day when both know the day, or another sex.
        let older = person("a", false, "1979-01-01", year);
        assert_eq!(check(&older, &mine, &into, &none), Err(MergeRefusal::IdentityMismatch));
        let other_day = person("a", false, "1980-06-15", day);
        assert_eq!(
            check(&other_day, &mine, &into, &none),
            Err(MergeRefusal::IdentityMismatch)
        );
        let woman = Beneficiary {
            sex: Sex::F,
            ..from.clone()
        };
        assert_eq!(check(&woman, &mine, &into, &none), Err(MergeRefusal::IdentityMismatch));
        let shared = [
            coverage("c1", "mut-a", "p", CoverageStatus::Active),
            coverage("c3", "mut-b", "q", CoverageStatus::Terminated),
        ];
        assert_eq!(check(&from, &shared, &into, &none), Err(MergeRefusal::CoveredByOthers));
        let same_product = [coverage("c2", "mut-a", "p", CoverageStatus::Suspended)];
        assert_eq!(
            check(&from, &mine, &into, &same_product),
            Err(MergeRefusal::AlreadyCovered)
        );
    }

    /// A refusal's constraint is the 409's code API.md (Beneficiaries, merge) names, except
    /// `into_merged`, which the route answers as `already_merged` at `/into`.
    #[test]
    fn each_refusal_has_the_code_the_api_answers() {
        for (refusal, code) in [
            (MergeRefusal::SamePerson, "same_person"),
            (MergeRefusal::AlreadyMerged, "already_merged"),
            (MergeRefusal::IntoMerged, "into_merged"),
            (MergeRefusal::HasNationalId, "has_national_id"),
            (MergeRefusal::IdentityMismatch, "identity_mismatch"),
            (MergeRefusal::CoveredByOthers, "covered_by_others"),
            (MergeRefusal::AlreadyCovered, "already_covered"),
        ] {
            assert_eq!(refusal.constraint(), code);
        }
    }

    #[test]
    fn a_terminated_coverage_of_the_product_does_not_clash() {
        // One organisation's two records of one person under one product: once one coverage
        // is terminated, the records merge (and the person's ceiling usage adds up).
        let from = person("a", false, "1980-01-01", BirthDatePrecision::Year);
        let into = person("b", false, "1980-01-01", BirthDatePrecision::Year);
        let live = [coverage("c1", "mut-a", "p", CoverageStatus::Active)];
        let ended = [coverage("c2", "mut-a", "p", CoverageStatus::Terminated)];
        assert_eq!(check_merge("mut-a", &from, &live, &into, &ended), Ok(()));
        assert_eq!(check_merge("mut-a", &from, &ended, &into, &live), Ok(()));
    }
}
