//! Webhooks: subscriptions, the deliveries of the outbox, and the retry schedule.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The event types a subscription may ask for.
pub const EVENT_TYPES: [&str; 8] = [
    "claim.submitted",
    "claim.base_adjudicated",
    "claim.adjudicated",
    "claim.cancelled",
    "claim.settled",
    "coverage.changed",
    "beneficiary.changed",
    "beneficiary.erased",
];

/// Live subscriptions one organisation may hold. Each event is written once per subscription
/// that takes it, in the change's own transaction, and each receiver that hangs holds a send
/// slot: without a bound, one organisation's hundreds of subscriptions to a dead receiver slowed
/// every write and held every slot, and others' events waited for hours. One subscription takes
/// any number of event types.
pub const MAX_SUBSCRIPTIONS: i64 = 10;

/// The conflict of a subscription past [`MAX_SUBSCRIPTIONS`].
pub const TOO_MANY_SUBSCRIPTIONS: &str = "too_many_subscriptions";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    pub id: String,
    pub organization: String,
    pub url: String,
    pub events: Vec<String>,
    pub secret: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub attempt: u32,
    pub at: DateTime<Utc>,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// A delivery's statuses, as storage writes them: `pending` until it is `delivered` or `failed`
/// (given up after its last attempt, or its subscription deleted).
pub const DELIVERY_STATUSES: [&str; 3] = ["pending", "delivered", "failed"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub subscription: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: Vec<Attempt>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// When its subscriber last asked for it again after it failed.
    pub redelivered_at: Option<DateTime<Utc>>,
}

/// A delivery a worker has leased, with what it needs to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueDelivery {
    pub id: String,
    pub url: String,
    pub secret: String,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    /// Tries so far, every one numbered: the next is `attempts + 1`.
    pub attempts: u32,
    /// Tries made before its last redelivery, which are not counted against the retry budget
    /// nor in the backoff: a redelivered delivery gets the whole schedule again.
    pub attempt_base: u32,
}

impl DueDelivery {
    /// The next try's place in the retry schedule (1 for the first after a redelivery).
    pub fn scheduled_attempt(&self) -> u32 {
        (self.attempts + 1).saturating_sub(self.attempt_base)
    }
}

/// When to try again after `attempts` failed tries: `initial × 2^(attempts − 1)`, scaled by a
/// jitter factor in per-mille. The jitter only ever adds (1000–1200, up to 20 % later) so that
/// receivers coming back are not hit by every sender at once, yet no retry comes earlier than
/// the configured delay (API.md: the first retry comes after `PASSERELLE_WEBHOOK_RETRY_INITIAL_MS`).
/// `None` once `max_attempts` are spent.
pub fn next_attempt(
    now: DateTime<Utc>,
    attempts: u32,
    max_attempts: u32,
    initial: Duration,
    jitter_per_mille: u32,
) -> Option<DateTime<Utc>> {
    if attempts >= max_attempts {
        return None;
    }
    let exponent = attempts.saturating_sub(1).min(30);
    let base_ms = initial.num_milliseconds().saturating_mul(1_i64 << exponent);
    let ms = base_ms.saturating_mul(i64::from(jitter_per_mille.clamp(1000, 1200))) / 1000;
    Some(now + Duration::milliseconds(ms.min(7 * 24 * 3600 * 1000)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_stops() {
        let now = Utc::now();
        let initial = Duration::seconds(10);
        assert_eq!(
            next_attempt(now, 1, 12, initial, 1000),
            Some(now + Duration::seconds(10))
        );
        assert_eq!(
            next_attempt(now, 2, 12, initial, 1000),
            Some(now + Duration::seconds(20))
        );
        assert_eq!(
            next_attempt(now, 4, 12, initial, 1200),
            Some(now + Duration::seconds(96))
        );
        assert_eq!(
            next_attempt(now, 3, 12, initial, 1500),
            Some(now + Duration::seconds(48)),
            "jitter adds at most 20 %"
        );
        assert_eq!(next_attempt(now, 12, 12, initial, 1000), None);
    }

    /// A redelivered delivery starts the schedule again: after two tries and a redelivery, its
    /// third try is the schedule's first, and the budget counts from there.
    #[test]
    fn a_redelivery_restarts_the_schedule() {
        let due = |attempts, attempt_base| DueDelivery {
            id: "e:s".into(),
            url: String::new(),
            secret: String::new(),
            event_id: "e".into(),
            event_type: "claim.submitted".into(),
            payload: String::new(),
            attempts,
            attempt_base,
        };
        assert_eq!(due(0, 0).scheduled_attempt(), 1);
        assert_eq!(due(2, 0).scheduled_attempt(), 3);
        assert_eq!(due(2, 2).scheduled_attempt(), 1);
        assert_eq!(due(13, 12).scheduled_attempt(), 2);
        let now = Utc::now();
        let initial = Duration::seconds(10);
        let first_again = due(12, 12).scheduled_attempt();
        assert_eq!(
            next_attempt(now, first_again, 12, initial, 1000),
            Some(now + initial),
            "the first delay again, not the twelfth"
        );
        assert_eq!(
            next_attempt(now, due(23, 12).scheduled_attempt(), 12, initial, 1000),
            None
        );
    }

    /// API.md: the first retry comes after the configured delay, never before, whatever the
    /// jitter drawn.
    #[test]
    fn jitter_never_brings_a_retry_forward() {
        let now = Utc::now();
        let initial = Duration::seconds(10);
        for jitter in [0, 500, 800, 999, 1000] {
            assert_eq!(
                next_attempt(now, 1, 12, initial, jitter),
                Some(now + initial),
                "jitter {jitter}"
            );
        }
        for attempts in 1..12 {
            let earliest = now + initial * (1 << (attempts - 1));
            assert!(next_attempt(now, attempts, 12, initial, 800) >= Some(earliest));
        }
    }

    /// API.md: no delay is longer than 7 days; one that would be, jitter included, is 7 days.
    /// Delays of days below that bound are kept as the schedule gives them.
    #[test]
    fn no_retry_waits_longer_than_seven_days() {
        let now = Utc::now();
        let week = Duration::days(7);
        // The largest first delay the configuration takes (README: up to 86400000 ms).
        let day = Duration::milliseconds(86_400_000);
        assert_eq!(next_attempt(now, 3, 12, day, 1000), Some(now + Duration::days(4)));
        assert_eq!(
            next_attempt(now, 3, 12, day, 1200),
            Some(now + Duration::hours(115) + Duration::minutes(12)),
            "4 days and 20 %"
        );
        assert_eq!(next_attempt(now, 4, 12, day, 1000), Some(now + week), "8 days");
        assert_eq!(next_attempt(now, 11, 12, day, 1000), Some(now + week));
        // 6 days by the schedule, 7.2 with the jitter drawn.
        let eighteen_hours = Duration::hours(18);
        assert_eq!(
            next_attempt(now, 4, 12, eighteen_hours, 1000),
            Some(now + Duration::days(6))
        );
        assert_eq!(next_attempt(now, 4, 12, eighteen_hours, 1200), Some(now + week));
    }
}
