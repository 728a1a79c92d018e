//! Rows as the databases return them, and their conversion into domain types. The same row
//! types decode from both databases: instants are `TIMESTAMPTZ` in PostgreSQL and RFC 3339
//! text in SQLite, both read as `DateTime<Utc>`.

use chrono::{DateTime, Utc};
use passerelle_domain::audit::AuditEvent;
use passerelle_domain::error::StoreError;
use passerelle_domain::organization::{Country, OrgId, OrgKind, Organization};

use super::errors::corrupt;

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct OrgRow {
    pub id: String,
    pub kind: String,
    pub country: String,
    pub name: String,
    pub registration_number: Option<String>,
    pub created_at: DateTime<Utc>,
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
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AuditRow {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub organization: String,
    pub subject: String,
    pub action: String,
    pub resource_type: String,
    pub resource_id: String,
    pub request_id: String,
    pub digest: String,
    pub prev_digest: String,
}

impl From<AuditRow> for AuditEvent {
    fn from(r: AuditRow) -> Self {
        AuditEvent {
            seq: r.seq,
            at: r.at,
            organization: r.organization,
            subject: r.subject,
            action: r.action,
            resource_type: r.resource_type,
            resource_id: r.resource_id,
            request_id: r.request_id,
            digest: r.digest,
            prev_digest: r.prev_digest,
        }
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct IdempotencyRow {
    pub fingerprint: String,
    pub response: Option<String>,
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct HeadRow {
    pub seq: i64,
    pub digest: String,
}
