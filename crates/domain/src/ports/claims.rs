//! Storage of claims. Pricing is a callback the store runs because the complementary share
//! depends on what other claims of the same person already use: the store prices with the usage
//! it then writes atomically with the claim, either under a lock or by compare-and-set against
//! the amount the price was computed from.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{WriteContext, Written};
use crate::claim::{Claim, ClaimStatus};
use crate::error::{FieldError, StoreError};
use crate::money::Xof;
use crate::pagination::{Page, PageRequest};

/// Why a claim change was refused by the rules (not by storage).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimRefusal {
    /// This organisation may not do this (403).
    NotAllowed,
    /// Not from the claim's current state (409).
    IllegalState(ClaimStatus),
    /// The request breaks rules (422).
    Invalid(Vec<FieldError>),
    /// What the claim was routed on changed before it could be written (a concurrent claim used
    /// up the ceiling): the caller routes it again from fresh facts.
    Rerouted,
}

#[derive(Debug)]
pub enum ClaimError {
    Store(StoreError),
    Refused(ClaimRefusal),
}

impl From<StoreError> for ClaimError {
    fn from(e: StoreError) -> Self {
        ClaimError::Store(e)
    }
}

/// The complementary usage a claim counts against: the coverage's person and product (the
/// ceiling is the person's, whichever of their coverages of the product paid) and a plan year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageKey {
    pub coverage: String,
    pub plan_year: i32,
}

/// Prices a new claim from the complementary amount other claims already use.
pub type PriceFn<'a> = dyn Fn(Xof) -> Result<Claim, ClaimRefusal> + Send + Sync + 'a;

/// Moves a claim to its next state, given what *other* claims already use.
pub type ChangeFn<'a> = dyn Fn(&Claim, Xof) -> Result<Claim, ClaimRefusal> + Send + Sync + 'a;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClaimFilter {
    /// Only claims this organisation takes part in (provider, submitter, base payer, mutuelle).
    pub party: Option<String>,
    pub status: Option<ClaimStatus>,
    pub since: Option<DateTime<Utc>>,
    /// Only the claims with this `external_id` (one per provider at most), as stored: trimmed.
    pub external_id: Option<String>,
}

#[async_trait]
pub trait ClaimStore: Send + Sync {
    /// Inserts the claim `price` returns, with its usage updated atomically with it: `price` is
    /// given what `usage` holds at the moment of the write. `seen` is what the caller last read
    /// there; a store may first try to write against it optimistically, and must price again
    /// under a lock when the usage moved meanwhile.
    /// A reused `external_id` for the provider is `Conflict { constraint: "external_id_taken" }`.
    async fn submit_claim(
        &self,
        ctx: &WriteContext,
        usage: Option<&UsageKey>,
        seen: Xof,
        price: &PriceFn<'_>,
    ) -> Result<Written<Claim>, ClaimError>;

    async fn get_claim(&self, id: &str) -> Result<Option<Claim>, StoreError>;

    /// Ordered by id (creation order).
    async fn list_claims(&self, filter: &ClaimFilter, page: &PageRequest) -> Result<Page<Claim>, StoreError>;

    /// Applies `change` to the stored claim under lock; `action` names the audit event.
    async fn change_claim(
        &self,
        ctx: &WriteContext,
        id: &str,
        action: &str,
        change: &ChangeFn<'_>,
    ) -> Result<Claim, ClaimError>;
}
