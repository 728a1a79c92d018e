//! Storage of settlement batches.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::WriteContext;
use crate::claim::Claim;
use crate::error::StoreError;
use crate::pagination::{Page, PageRequest};
use crate::settlement::{Payment, PaymentRefusal, Settlement, SettlementStatus, SettlementSummary};

/// Which settlements a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettlementFilter {
    /// Only the batches this organisation owes (its mutuelle) or is paid by (its payee); `None`
    /// for every batch (operators and auditors).
    pub party: Option<String>,
    pub payee: Option<String>,
    pub status: Option<SettlementStatus>,
}

#[derive(Debug)]
pub enum SettlementError {
    Store(StoreError),
    /// No adjudicated, unsettled claim of this mutuelle for this payee and period.
    Empty,
    /// The claims of the period owe together more than an amount can hold
    /// (`settlement::batch_total`).
    TooLarge,
    Refused(PaymentRefusal),
}

impl From<StoreError> for SettlementError {
    fn from(e: StoreError) -> Self {
        SettlementError::Store(e)
    }
}

#[async_trait]
pub trait SettlementStore: Send + Sync {
    /// Batches the mutuelle's adjudicated claims for `payee` with a service date in the period
    /// that no batch holds yet; a claim is taken by one batch only, even under concurrency.
    async fn create_settlement(
        &self,
        ctx: &WriteContext,
        id: &str,
        payee: &str,
        period: (NaiveDate, NaiveDate),
    ) -> Result<Settlement, SettlementError>;

    /// The batch with its claims and payments, read in one transaction: `paid_xof` and
    /// `status` are those of the payments listed, even while a payment is being recorded.
    async fn get_settlement(&self, id: &str) -> Result<Option<Settlement>, StoreError>;

    /// Newest first (by id, which is time-ordered); each without its claims and payments.
    async fn list_settlements(
        &self,
        filter: &SettlementFilter,
        page: &PageRequest,
    ) -> Result<Page<SettlementSummary>, StoreError>;

    /// The batch's claims, in id order, without their lines (`lines` empty; `totals` kept): a
    /// batch may hold thousands of claims of up to 1000 lines each, read for their totals.
    async fn settlement_claims(&self, id: &str) -> Result<Vec<Claim>, StoreError>;

    /// Records a payment; when the batch is paid in full its claims become `settled`.
    async fn add_payment(&self, ctx: &WriteContext, id: &str, payment: &Payment)
        -> Result<Settlement, SettlementError>;
}
