//! Storage of webhook subscriptions and the outbox, and the sending of deliveries.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::WriteContext;
use crate::error::StoreError;
use crate::pagination::{Page, PageRequest};
use crate::webhook::{Attempt, Delivery, DueDelivery, Subscription};

/// What a worker learned from one try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    pub attempt: Attempt,
    pub delivered: bool,
    /// When to try again; `None` with `delivered == false` means given up.
    pub retry_at: Option<DateTime<Utc>>,
    /// Whether anything went to the receiver. An event that does not read is failed unsent, and
    /// says nothing of the receiver: its subscription's `failing` is left as it was.
    pub sent: bool,
}

/// What asking for a delivery again found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redelivery {
    /// It was `failed` and is `pending` again, due at once, with a fresh retry budget.
    Redelivered(Delivery),
    /// The subscription has no such delivery.
    NotFound,
    /// It is not `failed`: `pending` or `delivered`.
    NotFailed(String),
}

/// Asking for a subscription's failed deliveries again, at most a given number at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedeliveredMany {
    /// How many became `pending`.
    pub redelivered: u64,
    /// The id of the last delivery taken, when failed deliveries matching the request are left
    /// after it: the next request continues from there.
    pub next: Option<String>,
}

/// One try of a delivery, ready to go: the event as the receiver gets it, and its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedPost {
    pub url: String,
    /// `Passerelle-Event-Id`: the same on every try, for the receiver to drop repeats.
    pub event_id: String,
    /// `Passerelle-Signature`.
    pub signature: String,
    /// The try's W3C trace context, when its span is exported.
    pub traceparent: Option<String>,
    pub body: Vec<u8>,
}

/// The network side of webhooks: the delivery worker decides what to send and when, this sends.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// POSTs `post` once, within a time limit of its own that includes resolving the receiver's
    /// name: the receiver's status code, or why no answer came as the attempt records it for the
    /// subscriber (`timeout`, `connection failed`, `refused: …`).
    async fn send(&self, post: SignedPost) -> Result<u16, String>;
}

#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Returns the subscription created, or the one a first request with the same
    /// `Idempotency-Key` created, as the key keeps it: without its secret (empty), which only the
    /// live subscription holds (`get_subscription`), and which its deletion erases.
    async fn create_subscription(&self, ctx: &WriteContext, sub: &Subscription) -> Result<Subscription, StoreError>;

    /// The organisation's live subscriptions, by id.
    async fn list_subscriptions(
        &self,
        organization: &str,
        page: &PageRequest,
    ) -> Result<Page<Subscription>, StoreError>;

    async fn get_subscription(&self, id: &str) -> Result<Option<Subscription>, StoreError>;

    /// False when there is no such live subscription of the organisation.
    async fn delete_subscription(&self, ctx: &WriteContext, id: &str) -> Result<bool, StoreError>;

    /// Newest first, each with its attempts; only those in `status` when it is given.
    async fn list_deliveries(
        &self,
        subscription: &str,
        status: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<Delivery>, StoreError>;

    /// Makes one `failed` delivery of the subscription `pending` again, due at `ctx.at`, its
    /// earlier attempts kept and its retry budget whole again; audited as `webhook.redelivered`.
    async fn redeliver(&self, ctx: &WriteContext, subscription: &str, delivery: &str)
        -> Result<Redelivery, StoreError>;

    /// Makes the subscription's oldest `failed` deliveries raised at or after `since` (all when
    /// `None`) and, when `after` is given, whose id comes after it, `pending` again, at most
    /// `limit`, as [`WebhookStore::redeliver`] does for one; audited once when any was.
    async fn redeliver_failed(
        &self,
        ctx: &WriteContext,
        subscription: &str,
        since: Option<DateTime<Utc>>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<RedeliveredMany, StoreError>;

    /// Leases up to `limit` due deliveries to `owner` until `lease_until`; two workers never
    /// lease the same delivery at once. A subscription that already has `per_subscription`
    /// deliveries under a live lease (any worker's) gets none more, and one lease gives it at
    /// most that many: a slow receiver cannot take every sending slot.
    async fn lease_deliveries(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: u32,
        per_subscription: u32,
    ) -> Result<Vec<DueDelivery>, StoreError>;

    async fn record_attempt(&self, delivery: &str, owner: &str, outcome: &AttemptOutcome) -> Result<(), StoreError>;

    /// Fails the pending deliveries of deleted subscriptions and of deactivated organisations,
    /// which the lease never takes: a change can write one while the deletion or deactivation
    /// that failed the others commits. Returns how many it failed.
    async fn fail_orphaned_deliveries(&self) -> Result<u64, StoreError>;

    /// Deliveries not yet delivered nor given up.
    async fn pending_deliveries(&self) -> Result<i64, StoreError>;

    /// Deletes, with their attempts, up to `limit` deliveries delivered before `before`, and
    /// deliveries made before it for subscriptions deleted before it (no one reads those: their
    /// list is 404). Failed deliveries of live subscriptions stay, to be sent again. Returns how
    /// many it deleted (fewer than it found when another replica forgot some meanwhile).
    async fn forget_deliveries(&self, before: DateTime<Utc>, limit: u32) -> Result<u64, StoreError>;
}
