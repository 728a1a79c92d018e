//! Storage of settlement batches.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::WriteContext;
use crate::claim::Claim;
use crate::error::StoreError;
use crate::settlement::{Payment, PaymentRefusal, Settlement};

#[derive(Debug)]
pub enum SettlementError {
    Store(StoreError),
    /// No adjudicated, unsettled claim of this mutuelle for this payee and period.
    Empty,
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

    async fn get_settlement(&self, id: &str) -> Result<Option<Settlement>, StoreError>;

    /// The batch's claims, in id order.
    async fn settlement_claims(&self, id: &str) -> Result<Vec<Claim>, StoreError>;

    /// Records a payment; when the batch is paid in full its claims become `settled`.
    async fn add_payment(&self, ctx: &WriteContext, id: &str, payment: &Payment)
        -> Result<Settlement, SettlementError>;
}
