//! What the domain needs from the outside world. `adapters` implements these; `api` holds them
//! as `Arc<dyn …>`.

mod batches;
mod claims;
mod settlements;
mod webhooks;

pub use batches::*;
pub use claims::*;
pub use settlements::*;
pub use webhooks::*;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditEvent, NewAuditEvent};
use crate::beneficiary::{Beneficiary, NationalId, ValidBeneficiary};
use crate::coverage::{Contribution, Coverage, Relationship};
use crate::eligibility::{BirthDatePrecision, EligibilityInput};
use crate::error::StoreError;
use crate::money::Xof;
use crate::organization::{OrgKind, Organization};
use crate::pagination::{Page, PageRequest};
use crate::product::{CareLevel, Category, ProductVersion};

/// Who is writing, and why: carried into every write so the audit event and the idempotency
/// record land in the same transaction as the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteContext {
    pub organization: String,
    pub subject: String,
    pub request_id: String,
    /// The W3C `traceparent` the change's webhook deliveries carry, so that a receiver's trace
    /// joins the request's (none for a change no request made: bulk jobs, commands).
    pub trace_parent: Option<String>,
    pub at: DateTime<Utc>,
    pub idempotency: Option<IdempotencyKey>,
}

impl WriteContext {
    pub fn audit(&self, action: &str, resource_type: &str, resource_id: &str) -> NewAuditEvent {
        NewAuditEvent {
            at: self.at,
            organization: self.organization.clone(),
            subject: self.subject.clone(),
            action: action.to_owned(),
            resource_type: resource_type.to_owned(),
            resource_id: resource_id.to_owned(),
            request_id: self.request_id.clone(),
        }
    }
}

/// An `Idempotency-Key` and a fingerprint of the request it came with (method, path, query,
/// body), scoped to the calling organisation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdempotencyKey {
    pub key: String,
    /// Of the request as sent: method, path, query and body bytes.
    pub fingerprint: String,
    /// Of the same with a JSON body in canonical form (member order and spacing aside), when
    /// the body is JSON: a retry serialised again matches on this one.
    pub canonical: Option<String>,
    /// The canonical form as it was before numbers were read by value (`2.0` then differed
    /// from `2`): a key kept by an earlier release holds that one, and its retries must still
    /// match it for as long as keys are kept. Never stored.
    pub legacy_canonical: Option<String>,
}

impl IdempotencyKey {
    /// Whether a key claimed with these fingerprints was claimed by this same request. A key
    /// claimed before canonical fingerprints were kept has none, and matches on its bytes.
    pub fn same_request(&self, fingerprint: &str, canonical: Option<&str>) -> bool {
        self.fingerprint == fingerprint
            || canonical
                .is_some_and(|c| self.canonical.as_deref() == Some(c) || self.legacy_canonical.as_deref() == Some(c))
    }
}

/// The result of a write that may have been a replay of an earlier one with the same key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written<T> {
    pub value: T,
    pub replayed: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub organization: Option<String>,
    pub resource_type: Option<String>,
    pub resource_id: Option<String>,
    pub action: Option<String>,
    pub since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrganizationFilter {
    pub kind: Option<OrgKind>,
    pub country: Option<String>,
}

#[async_trait]
pub trait HealthStore: Send + Sync {
    /// One round trip to the database.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Whether the read replica answered its last probe; `None` without a replica. No round trip.
    fn read_replica_up(&self) -> Option<bool> {
        None
    }
}

/// What the service keeps of `Idempotency-Key`s (API.md §3) outside the writes that claim them.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// The first response to `key`, as the write stored it (JSON), when the same request was
    /// already answered; `None` when the key is new or its first request is still running;
    /// `IdempotencyMismatch` when it came with another request. Read before a request is judged
    /// again, so a retry is answered as the first was whatever changed since.
    async fn replay(&self, organization: &str, key: &IdempotencyKey) -> Result<Option<String>, StoreError>;

    /// Whether `key` was claimed by a request that committed (a first request still running
    /// is not seen: its claim is in its own transaction, which settles the race). Read before a
    /// request that must be received whole before its fingerprint is known (a bulk upload), so
    /// that a reused key is judged as such before anything else.
    async fn idempotency_key_used(&self, organization: &str, key: &str) -> Result<bool, StoreError>;

    /// Forgets the keys claimed before `before`, and the responses kept with them; how many.
    async fn forget_idempotency_keys(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

#[async_trait]
pub trait OrganizationStore: Send + Sync {
    /// Creates the organisation and its audit event; a duplicate id is `Conflict`.
    async fn create_organization(
        &self,
        ctx: &WriteContext,
        org: &Organization,
    ) -> Result<Written<Organization>, StoreError>;

    /// Creates the organisation unless one with its id exists; true when it was created.
    async fn ensure_organization(&self, ctx: &WriteContext, org: &Organization) -> Result<bool, StoreError>;

    async fn get_organization(&self, id: &str) -> Result<Option<Organization>, StoreError>;

    /// Deactivates the organisation (`active` false) or reactivates it, with its audit event,
    /// and answers it as it now is: `None` when there is no such organisation, `Conflict`
    /// `already_deactivated` or `already_active` when it is so already.
    async fn set_organization_active(
        &self,
        ctx: &WriteContext,
        id: &str,
        active: bool,
    ) -> Result<Option<Organization>, StoreError>;

    /// The ids of the organisations deactivated now.
    async fn deactivated_organizations(&self) -> Result<Vec<String>, StoreError>;

    /// Ordered by id.
    async fn list_organizations(
        &self,
        filter: &OrganizationFilter,
        page: &PageRequest,
    ) -> Result<Page<Organization>, StoreError>;
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends events that are not part of another change (reads by auditors, say).
    async fn append_audit(&self, events: &[NewAuditEvent]) -> Result<(), StoreError>;

    /// Ordered by `seq`, newest first.
    async fn list_audit_events(&self, filter: &AuditFilter, page: &PageRequest)
        -> Result<Page<AuditEvent>, StoreError>;

    async fn get_audit_event(&self, seq: i64) -> Result<Option<AuditEvent>, StoreError>;

    /// Up to `limit` chained events with `seq >= from`, oldest first: the verifier's walk, which
    /// [`flush_audit`](Self::flush_audit) first.
    async fn audit_events_from(&self, from: i64, limit: u32) -> Result<Vec<AuditEvent>, StoreError>;

    /// The chain's head as the chainer last wrote it, `(seq, digest)` of the newest event
    /// (`(0, GENESIS_DIGEST)` when empty). A walk that ends before it met a log whose newest
    /// events were deleted.
    async fn audit_head(&self) -> Result<(i64, String), StoreError>;

    /// Returns once every event of a change committed before the call is chained.
    /// `ChainBlocked` when none can be: the chain's head is behind events already chained.
    async fn flush_audit(&self) -> Result<(), StoreError>;
}

#[async_trait]
pub trait ProductStore: Send + Sync {
    /// Creates the product with its first version.
    async fn create_product(
        &self,
        ctx: &WriteContext,
        first: &ProductVersion,
    ) -> Result<Written<ProductVersion>, StoreError>;

    /// Adds `next` (whose `version` is the current one + 1); `StaleVersion` when another version
    /// was added meanwhile.
    async fn add_product_version(&self, ctx: &WriteContext, next: &ProductVersion) -> Result<(), StoreError>;

    /// Every version of a product, oldest first; empty when there is no such product.
    async fn product_versions(&self, id: &str) -> Result<Vec<ProductVersion>, StoreError>;

    /// The latest version of each product, ordered by id, optionally of one organisation only.
    async fn list_products(
        &self,
        organization: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ProductVersion>, StoreError>;
}

/// One person joining a household's registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMember {
    pub relationship: Relationship,
    /// A dependant's own member number, when the mutuelle gives one.
    pub own_number: Option<String>,
    pub person: ValidBeneficiary,
}

/// A household joining one product: the principal first, then the dependants in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHousehold {
    pub product: ProductVersion,
    pub member_number: String,
    pub start_date: NaiveDate,
    pub end_date: Option<NaiveDate>,
    pub paid_through: Option<NaiveDate>,
    pub members: Vec<NewMember>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredMember {
    pub relationship: Relationship,
    pub beneficiary: Beneficiary,
    pub coverage: Coverage,
    /// The person was already known by their national id.
    pub matched: bool,
    /// People without a national id who look the same (names, sex, birth date).
    pub possible_duplicates: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub members: Vec<RegisteredMember>,
    /// The same household was already registered under this member number (bulk re-uploads).
    pub skipped: bool,
}

/// Who a base affiliation is for: a known person, or one to match or create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonRef {
    Existing(String),
    New(ValidBeneficiary),
}

/// A coverage change: the new state, whose `version` is the stored one + 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageUpdate {
    pub coverage: Coverage,
    pub action: &'static str,
}

#[async_trait]
pub trait RegistryStore: Send + Sync {
    /// Registers a household all or nothing. With `skip_existing`, a principal member number
    /// already held by the same person makes it a no-op (`skipped`); otherwise, and when another
    /// person holds it, `Conflict { constraint: "member_number_taken" }`.
    async fn register_household(
        &self,
        ctx: &WriteContext,
        household: &NewHousehold,
        skip_existing: bool,
    ) -> Result<Written<Registration>, StoreError>;

    /// A dependant joining the household of the principal's coverage `principal` (the caller's),
    /// from `start_date`, under the household's member number unless `member.own_number`.
    /// `Conflict`: `household_terminated` (the principal's coverage is), `after_household_end`
    /// (`start_date` after the principal's end date, read under the lock), `household_full` (it
    /// already has `max_dependants` live dependants, counted under a lock), `duplicate_member` (a
    /// live member looks the same, one of the two without a national id), `already_covered`,
    /// `identity_mismatch` (the national id is stored for another sex or birth date),
    /// `dependant_age_limit` (a child found by national id whose stored birth date is past the
    /// product's `child_max_age` on `start_date`), `member_number_taken`. `product` is the
    /// version in force on `start_date`, whose household rules apply.
    async fn add_dependant(
        &self,
        ctx: &WriteContext,
        principal: &str,
        member: &NewMember,
        start_date: NaiveDate,
        product: &ProductVersion,
    ) -> Result<Written<RegisteredMember>, StoreError>;

    /// A scheme's base affiliation of one person.
    async fn create_coverage(
        &self,
        ctx: &WriteContext,
        person: &PersonRef,
        household: &NewHousehold,
    ) -> Result<Written<RegisteredMember>, StoreError>;

    async fn get_beneficiary(&self, id: &str) -> Result<Option<Beneficiary>, StoreError>;

    /// Writes a person's corrected names, phone and locality, whose `version` is the stored one
    /// + 1 (`StaleVersion` otherwise), with a `beneficiary.updated` audit event. Identity
    /// (sex, birth date) is never changed here; a national id only added to a person without one
    /// (`Conflict` `national_id_taken` when it is another person's).
    async fn update_beneficiary(&self, ctx: &WriteContext, beneficiary: &Beneficiary) -> Result<(), StoreError>;

    /// Merges the person `from`, at version `from_version` (`StaleVersion` otherwise), into
    /// `into`, for `ctx.organization`, judged by [`crate::merge::check_merge`] on both people
    /// and their coverages held locked (`Conflict` with the refusal's constraint; `NotFound`
    /// when either is unknown). `from`'s coverages, and its ceiling usage (added to `into`'s
    /// where both used one product's ceiling in one plan year), move to `into`; `from` keeps
    /// its row, one version more, with `merged_into` set, and so do the records merged into it
    /// before. Audited (`beneficiary.merged` for each of the two, `coverage.updated` for each
    /// coverage moved) and announced (`coverage.changed`, and `beneficiary.changed` of `from`
    /// to the caller's organisation). Returns the person merged into.
    async fn merge_beneficiary(
        &self,
        ctx: &WriteContext,
        from: &str,
        from_version: u32,
        into: &str,
    ) -> Result<Beneficiary, StoreError>;

    /// Erases the personal data of every person whose coverages all ended before `before` (a
    /// terminated coverage without an end date: terminated before that day; a dependant's: also
    /// when the principal's did), and of the records merged into such a person or into one
    /// erased earlier: names, national id, phone and place removed, the birth date cut to its
    /// year ([`crate::retention::erased_birth_date`]), `erased_at` set, one version more, each
    /// audited as [`crate::retention::ERASED_ACTION`] under `ctx`. In transactions of a few
    /// hundred people, each judged again under lock, so that a coverage extended or added
    /// meanwhile keeps its person. `dry_run` counts and changes nothing.
    async fn erase_personal_data(
        &self,
        ctx: &WriteContext,
        before: NaiveDate,
        dry_run: bool,
    ) -> Result<crate::retention::Erasure, StoreError>;

    async fn find_by_national_id(&self, national_id: &NationalId) -> Result<Option<Beneficiary>, StoreError>;

    /// Whether `organization` holds any coverage of the person (what makes them visible to it).
    async fn covers(&self, organization: &str, beneficiary: &str) -> Result<bool, StoreError>;

    /// Whether `organization` holds a coverage of the person that is not terminated (nor a
    /// dependant's whose principal's coverage is terminated): what lets
    /// it correct them and be told of corrections. One whose coverages all ended keeps reading
    /// the person it covered (its claims and history name them) but no longer follows them.
    async fn covers_now(&self, organization: &str, beneficiary: &str) -> Result<bool, StoreError>;

    async fn get_coverage(&self, id: &str) -> Result<Option<Coverage>, StoreError>;

    /// A person's coverages ordered by id, optionally only those of one organisation.
    async fn list_coverages(
        &self,
        beneficiary: &str,
        organization: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Coverage>, StoreError>;

    /// Stores the new state; `StaleVersion` when the coverage changed meanwhile.
    async fn update_coverage(&self, ctx: &WriteContext, update: &CoverageUpdate) -> Result<(), StoreError>;

    /// Records the payment and moves the coverage's `paid_through` forward (never back).
    /// `Conflict`: `coverage_terminated`, or `duplicate_reference` when a contribution to the
    /// coverage not cancelled carries the same reference.
    async fn add_contribution(
        &self,
        ctx: &WriteContext,
        contribution: &Contribution,
    ) -> Result<Written<Contribution>, StoreError>;

    /// Cancels a contribution of the coverage and works `paid_through` out again from the
    /// contributions left and the registration's own. `NotFound` when the coverage holds no such
    /// contribution; `Conflict`: `coverage_terminated`, `already_cancelled`.
    async fn cancel_contribution(
        &self,
        ctx: &WriteContext,
        coverage: &str,
        contribution: &str,
    ) -> Result<Written<Contribution>, StoreError>;

    /// Newest first.
    async fn list_contributions(&self, coverage: &str, page: &PageRequest) -> Result<Page<Contribution>, StoreError>;
}

/// The conflict of a [`PersonKey::MemberBorn`] that several people answer.
pub const AMBIGUOUS_PERSON: &str = "ambiguous_person";

/// How a front desk names the person: by id, by national id, or by a member number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PersonKey {
    Id(String),
    NationalId(NationalId),
    Member {
        organization: String,
        member_number: String,
    },
    /// One of the people covered under a member number, told apart by their birth date: a
    /// dependant with no number of their own shares the household's, which alone names the
    /// principal. A year on either side compares years (`births_agree`).
    MemberBorn {
        organization: String,
        member_number: String,
        birth_date: NaiveDate,
        precision: BirthDatePrecision,
    },
}

/// Everything an eligibility check needs about one coverage, read in one round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoverageFacts {
    pub coverage: Coverage,
    /// The product version in force on the service date; `None` before the product's first.
    pub product: Option<std::sync::Arc<ProductVersion>>,
    /// The versions that come into force after the service date (usually none): a reason's
    /// `until` may fall on one of their days.
    pub later_versions: Vec<std::sync::Arc<ProductVersion>>,
    pub principal_paid_through: Option<NaiveDate>,
    /// For a dependant, the principal coverage's status and end date.
    pub principal: Option<crate::eligibility::PrincipalStanding>,
    /// Complementary shares already counted for this person under the coverage's product in the
    /// service date's plan year, whichever of their coverages of the product they were paid under.
    pub complementary_used: Xof,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EligibilityFacts {
    pub person: String,
    pub birth_date: NaiveDate,
    pub birth_date_precision: BirthDatePrecision,
    pub coverages: Vec<CoverageFacts>,
}

impl EligibilityFacts {
    /// What `eligibility::evaluate` needs to judge one of the person's coverages for one care:
    /// the one place the facts become the rules' input, for checks and claims alike.
    pub fn input<'a>(
        &self,
        c: &'a CoverageFacts,
        service_date: NaiveDate,
        care_level: CareLevel,
        category: Option<Category>,
    ) -> EligibilityInput<'a> {
        EligibilityInput {
            coverage: &c.coverage,
            product: c.product.as_deref(),
            birth_date: self.birth_date,
            birth_date_precision: self.birth_date_precision,
            principal_paid_through: c.principal_paid_through,
            principal: c.principal,
            service_date,
            care_level,
            category,
            complementary_used_xof: c.complementary_used,
        }
    }
}

#[async_trait]
pub trait EligibilityStore: Send + Sync {
    /// The person and every coverage they hold, with what the rules need; `None` when unknown.
    /// Eligibility checks may read a replica; `from_primary` reads the primary (claims, which
    /// must not miss a coverage changed a moment ago).
    async fn eligibility_facts(
        &self,
        person: &PersonKey,
        service_date: NaiveDate,
        from_primary: bool,
    ) -> Result<Option<EligibilityFacts>, StoreError>;
}

/// Everything the service stores, behind one handle.
pub trait Store:
    HealthStore
    + IdempotencyStore
    + OrganizationStore
    + AuditStore
    + ProductStore
    + RegistryStore
    + EligibilityStore
    + BatchStore
    + ClaimStore
    + SettlementStore
    + WebhookStore
{
}

impl<T> Store for T where
    T: HealthStore
        + IdempotencyStore
        + OrganizationStore
        + AuditStore
        + ProductStore
        + RegistryStore
        + EligibilityStore
        + BatchStore
        + ClaimStore
        + SettlementStore
        + WebhookStore
{
}
