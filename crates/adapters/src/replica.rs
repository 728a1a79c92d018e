//! Whether the PostgreSQL read replica answers, so that eligibility checks can fall back to the
//! primary while it does not: a front desk must not lose its checks because a copy of the data
//! is down, when the original is up.
//!
//! A check that fails on the replica for a connection-level reason, or gets no answer within
//! the read timeout (`PASSERELLE_DATABASE_READ_TIMEOUT_MS`), marks it down at once and is answered from the primary. While the replica
//! is down no check tries it; a probe pings it every [`PROBE_EVERY`] and sends checks back to it
//! as soon as it answers. The probe also runs
//! while the replica is up, so that readiness reports a replica that died under no load.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// How often the replica is pinged, up or down.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// A ping slower than this counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The read timeout's default: far above a facts read's usual few milliseconds.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub(crate) struct ReplicaWatch {
    up: Arc<AtomicBool>,
    read_timeout: Duration,
}

impl ReplicaWatch {
    /// Starts the probe; it stops when the last watch is dropped.
    pub(crate) fn start(replica: sqlx::PgPool, read_timeout: Duration) -> ReplicaWatch {
        let up = Arc::new(AtomicBool::new(true));
        tokio::spawn(probe(replica, Arc::downgrade(&up)));
        ReplicaWatch { up, read_timeout }
    }

    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// A facts read on the replica slower than this is answered from the primary, and the
    /// replica marked down: a host gone from the network sends no error, and a statement already
    /// sent on an open connection would otherwise wait for TCP to give up.
    pub(crate) fn read_timeout(&self) -> Duration {
        self.read_timeout
    }

    /// A read failed on the replica for a reason the primary would not share.
    pub(crate) fn mark_down(&self, error: &str) {
        if self.up.swap(false, Ordering::AcqRel) {
            tracing::warn!(error, "read replica unavailable: eligibility reads go to the primary");
        }
    }
}

async fn probe(replica: sqlx::PgPool, up: Weak<AtomicBool>) {
    let mut every = tokio::time::interval(PROBE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await;
    loop {
        every.tick().await;
        let answered = matches!(
            tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(&replica)).await,
            Ok(Ok(_))
        );
        let Some(up) = up.upgrade() else { return };
        let was_up = up.swap(answered, Ordering::AcqRel);
        if answered && !was_up {
            tracing::info!("read replica answers again: eligibility reads go back to it");
        } else if !answered && was_up {
            tracing::warn!("read replica does not answer: eligibility reads go to the primary");
        }
    }
}
