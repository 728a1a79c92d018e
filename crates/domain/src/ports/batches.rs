//! Storage of bulk registration jobs (API.md §5 Registrations, Bulk).

use async_trait::async_trait;

#[async_trait]
pub trait BatchStore: Send + Sync {}
