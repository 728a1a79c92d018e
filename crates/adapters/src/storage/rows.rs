//! Rows as the databases return them, and their conversion into domain types. The same row
//! types decode from both databases: instants are `TIMESTAMPTZ` in PostgreSQL and RFC 3339
//! text in SQLite, both read as `DateTime<Utc>`.

use chrono::{DateTime, NaiveDate, Utc};
use passerelle_domain::audit::{AuditEvent, NewAuditEvent, RowDamage};
use passerelle_domain::beneficiary::{Beneficiary, Locality, NationalId, Sex};
use passerelle_domain::coverage::{Contribution, Coverage, CoverageStatus, Relationship};
use passerelle_domain::eligibility::BirthDatePrecision;
use passerelle_domain::error::StoreError;
use passerelle_domain::money::Xof;
use passerelle_domain::organization::{Country, OrgId, OrgKind, Organization};
use passerelle_domain::product::Layer;

use super::errors::corrupt;

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct OrgRow {
    pub id: String,
    pub kind: String,
    pub country: String,
    pub name: String,
    pub registration_number: Option<String>,
    pub created_at: DateTime<Utc>,
    pub deactivated_at: Option<DateTime<Utc>>,
}

impl TryFrom<OrgRow> for Organization {
    type Error = StoreError;

    fn try_from(row: OrgRow) -> Result<Self, StoreError> {
        Ok(Organization {
            id: OrgId::parse(&row.id).ok_or_else(|| corrupt("organization id"))?,
            kind: OrgKind::parse(&row.kind).ok_or_else(|| corrupt("organization kind"))?,
            country: Country::parse(&row.country).ok_or_else(|| corrupt("organization country"))?,
            name: row.name,
            registration_number: row.registration_number,
            created_at: row.created_at,
            deactivated_at: row.deactivated_at,
        })
    }
}

/// An audit event as stored. `At` is its `at` as the backend stores it, read without decoding
/// (`timestamptz` in PostgreSQL, text in SQLite), so that a row tampered with is still read and
/// verification names it; each backend's `read_audit_at` turns it into the instant.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AuditRow<At> {
    pub seq: i64,
    pub at: At,
    pub organization: String,
    pub subject: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub request_id: String,
    pub digest: String,
    pub prev_digest: String,
}

impl<At> AuditRow<At> {
    /// The event, its `at` read by `read_at`: the instant, and what is wrong with the stored
    /// value when storage could not have written it.
    pub fn into_event(self, read_at: impl FnOnce(At) -> (DateTime<Utc>, Option<RowDamage>)) -> AuditEvent {
        let (at, damage) = read_at(self.at);
        AuditEvent {
            seq: self.seq,
            at,
            organization: self.organization,
            subject: self.subject,
            action: self.action,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            request_id: self.request_id,
            digest: self.digest,
            prev_digest: self.prev_digest,
            damage,
        }
    }
}

/// An instant stored as text, read back: `written` is the text this backend writes for an
/// instant. Only RFC 3339 text is an instant here (chrono also takes `t` or a space for the
/// `T`); other text, though the driver would decode some of it, is unreadable.
pub(crate) fn instant_from_text(
    stored: String,
    written: impl FnOnce(DateTime<Utc>) -> Option<String>,
) -> (DateTime<Utc>, Option<RowDamage>) {
    match DateTime::parse_from_rfc3339(&stored) {
        Ok(at) => {
            let at = at.with_timezone(&Utc);
            if written(at).as_deref() == Some(stored.as_str()) {
                (at, None)
            } else {
                (at, Some(RowDamage::AtRespelled(stored)))
            }
        }
        Err(_) => (DateTime::UNIX_EPOCH, Some(RowDamage::AtUnreadable(stored))),
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct IdempotencyRow {
    pub fingerprint: String,
    pub canonical_fingerprint: Option<String>,
    pub response: Option<String>,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct HeadRow {
    pub seq: i64,
    pub digest: String,
}

/// An audit event waiting in `audit_queue` to be chained.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct QueuedRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub organization: String,
    pub subject: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub request_id: String,
}

impl From<QueuedRow> for NewAuditEvent {
    fn from(r: QueuedRow) -> Self {
        NewAuditEvent {
            at: r.at,
            organization: r.organization,
            subject: r.subject,
            action: r.action,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            request_id: r.request_id,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct BeneficiaryRow {
    pub id: String,
    pub nid_country: Option<String>,
    pub nid_type: Option<String>,
    pub nid_value: Option<String>,
    pub family_name: String,
    pub given_names: String,
    pub sex: String,
    pub birth_date: NaiveDate,
    pub birth_date_precision: String,
    pub phone: Option<String>,
    pub region: Option<String>,
    pub district: Option<String>,
    pub commune: Option<String>,
    pub created_at: DateTime<Utc>,
    pub version: i64,
    pub merged_into: Option<String>,
    pub merged_by: Option<String>,
    pub erased_at: Option<DateTime<Utc>>,
}

pub(crate) const BENEFICIARY_COLUMNS: &str = "id, nid_country, nid_type, nid_value, family_name, given_names, sex, \
     birth_date, birth_date_precision, phone, region, district, commune, created_at, version, merged_into, merged_by, \
     erased_at";

impl TryFrom<BeneficiaryRow> for Beneficiary {
    type Error = StoreError;

    fn try_from(r: BeneficiaryRow) -> Result<Self, StoreError> {
        let national_id = match (r.nid_country, r.nid_type, r.nid_value) {
            (Some(country), Some(id_type), Some(value)) => Some(NationalId {
                country,
                id_type,
                value,
            }),
            _ => None,
        };
        let locality = match (r.region, r.district, r.commune) {
            (Some(region), Some(district), Some(commune)) => Some(Locality {
                region,
                district,
                commune,
            }),
            _ => None,
        };
        Ok(Beneficiary {
            id: r.id,
            national_id,
            family_name: r.family_name,
            given_names: r.given_names,
            sex: Sex::parse(&r.sex).ok_or_else(|| corrupt("sex"))?,
            birth_date: r.birth_date,
            birth_date_precision: BirthDatePrecision::parse(&r.birth_date_precision)
                .ok_or_else(|| corrupt("birth date precision"))?,
            phone: r.phone,
            locality,
            created_at: r.created_at,
            version: u32::try_from(r.version).map_err(|_| corrupt("person version"))?,
            merged_into: r.merged_into,
            merged_by: r.merged_by,
            erased_at: r.erased_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct CoverageRow {
    pub id: String,
    pub beneficiary: String,
    pub product: String,
    pub organization: String,
    pub layer: String,
    pub member_number: String,
    pub relationship: String,
    pub principal_coverage: Option<String>,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub status: String,
    pub paid_through: Option<NaiveDate>,
    pub version: i64,
}

pub(crate) const COVERAGE_COLUMNS: &str =
    "id, beneficiary, product, organization, layer, member_number, relationship, \
     principal_coverage, start_date, end_date, status, paid_through, version";

impl TryFrom<CoverageRow> for Coverage {
    type Error = StoreError;

    fn try_from(r: CoverageRow) -> Result<Self, StoreError> {
        Ok(Coverage {
            id: r.id,
            beneficiary: r.beneficiary,
            product: r.product,
            organization: r.organization,
            layer: Layer::parse(&r.layer).ok_or_else(|| corrupt("layer"))?,
            member_number: r.member_number,
            relationship: Relationship::parse(&r.relationship).ok_or_else(|| corrupt("relationship"))?,
            principal_coverage: r.principal_coverage,
            start_date: r.start_date,
            end_date: r.end_date,
            status: CoverageStatus::parse(&r.status).ok_or_else(|| corrupt("coverage status"))?,
            paid_through: r.paid_through,
            version: u32::try_from(r.version).map_err(|_| corrupt("coverage version"))?,
        })
    }
}

pub(crate) const CONTRIBUTION_COLUMNS: &str =
    "id, coverage, amount_xof, period_start, period_end, paid_at, reference, created_at, cancelled_at";

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ContributionRow {
    pub id: String,
    pub coverage: String,
    pub amount_xof: i64,
    pub period_start: NaiveDate,
    pub period_end: NaiveDate,
    pub paid_at: NaiveDate,
    pub reference: String,
    pub created_at: DateTime<Utc>,
    pub cancelled_at: Option<DateTime<Utc>>,
}

impl From<ContributionRow> for Contribution {
    fn from(r: ContributionRow) -> Self {
        Contribution {
            id: r.id,
            coverage: r.coverage,
            amount_xof: Xof(r.amount_xof),
            period_start: r.period_start,
            period_end: r.period_end,
            paid_at: r.paid_at,
            reference: r.reference,
            created_at: r.created_at,
            cancelled_at: r.cancelled_at,
        }
    }
}
