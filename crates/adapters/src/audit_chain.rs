//! The chainer: the one task per process that appends to the audit chain.
//!
//! A change writes its audit events to `audit_queue` inside its own transaction, nudges the
//! chainer and answers: its events are durable already, and every reader of the log first waits
//! for a cycle ([`Chainer::flush`]), so none can miss them. An eligibility check (which has no
//! transaction of its own) hands its event to the chainer directly and waits until it is chained
//! and durable. Every event gathered at the same moment shares one transaction under the chain's
//! head lock. The head lock is therefore never held during a change, and concurrent changes commit in
//! parallel instead of queueing behind one another's commit. While one cycle commits, the next
//! one gathers, so the batch size follows the load.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use passerelle_domain::audit::NewAuditEvent;
use passerelle_domain::error::StoreError;
use tokio::sync::{mpsc, oneshot};

use crate::batch_loader::worth_a_yield;

/// Queued events taken by one cycle; a cycle that takes this many runs again at once.
pub(crate) const QUEUE_BATCH: i64 = 2000;

/// Most direct events (eligibility checks, reads) in one cycle.
const MAX_DIRECT: usize = 512;
/// How many times a cycle yields, at most, for the events of checks whose facts have just
/// arrived to join it before it starts.
const MAX_YIELDS: usize = 4;

/// How often the queue's drained rows are reclaimed, when there are any.
const TIDY_EVERY: Duration = Duration::from_secs(1);

/// How often an idle chainer looks for events queued by a process that stopped before chaining.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The longest one transaction of the chainer may take. A connection whose link went silent (a
/// database host gone without closing it) never answers, and the chainer, waiting on it, chained
/// nothing more: every check on the replica was 503 while `/health/ready` stayed 200. Past this,
/// the transaction is given up (its connection dropped) and the next cycle starts on another;
/// given up while it committed, it is found committed: the next cycle reads the head again.
#[cfg(not(test))]
const CHAIN_DEADLINE: Duration = Duration::from_secs(10);
#[cfg(test)]
// Long enough for a loaded machine to run a test's deliberate hold (50 ms) without giving it up.
const CHAIN_DEADLINE: Duration = Duration::from_secs(2);

/// One transaction of the chainer, given up past [`CHAIN_DEADLINE`].
async fn chain_within(writer: &dyn ChainWriter, direct: &[NewAuditEvent], drain: bool) -> Result<usize, StoreError> {
    tokio::time::timeout(CHAIN_DEADLINE, writer.chain(direct, drain))
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "an audit chain transaction took longer than {} ms and was given up",
                CHAIN_DEADLINE.as_millis()
            )))
        })
}

/// What a backend does for the chainer: one transaction per call.
#[async_trait]
pub(crate) trait ChainWriter: Send + Sync + 'static {
    /// Under the head lock: chains up to [`QUEUE_BATCH`] queued events (oldest first), then
    /// `direct`, and commits. Returns how many queued events it took.
    /// With `drain` false the queue is left alone (direct events only).
    async fn chain(&self, direct: &[NewAuditEvent], drain: bool) -> Result<usize, StoreError>;

    /// Whether any event waits in the queue (a cheap probe, no lock).
    async fn has_queued(&self) -> Result<bool, StoreError>;

    /// Reclaims the space of drained queue rows, where the database does not by itself.
    async fn tidy(&self) -> Result<(), StoreError>;
}

/// What a cycle's waiters are told of its failure.
#[derive(Debug, Clone)]
enum Failure {
    /// The head is behind events already chained: no cycle can succeed until an operator
    /// puts it right ([`StoreError::ChainBlocked`]).
    Blocked(String),
    Other(String),
}

impl Failure {
    fn of(e: &StoreError) -> Failure {
        match e {
            // The one unique rule a cycle's writes can break is the event's `seq`: taken by an
            // event the head does not cover.
            StoreError::Conflict { .. } | StoreError::ChainBlocked(_) => Failure::Blocked(e.to_string()),
            _ => Failure::Other(e.to_string()),
        }
    }

    fn into_error(self) -> StoreError {
        match self {
            Failure::Blocked(e) => StoreError::ChainBlocked(e),
            Failure::Other(e) => StoreError::Unavailable(e),
        }
    }
}

/// How often a blocked chain is logged as an error, at most: every check meets it.
const BLOCKED_LOG_EVERY: Duration = Duration::from_secs(10);

type Waiter = oneshot::Sender<Result<(), Failure>>;

struct Request {
    events: Vec<NewAuditEvent>,
    /// Whether the queue must be drained before the waiter is answered.
    drain: bool,
    /// None for a nudge, which nobody waits for.
    waiter: Option<Waiter>,
}

#[derive(Clone)]
pub(crate) struct Chainer {
    /// None when the process only reads the log (`passerelle audit verify`): nothing is chained.
    requests: Option<mpsc::Sender<Request>>,
    /// Set by a nudge, cleared by the cycle that drains for it: a nudge that finds the channel
    /// full is not lost, the next cycle drains anyway.
    drain_wanted: Arc<AtomicBool>,
}

impl Chainer {
    /// `yields`: whether a cycle's fixed cost makes it worth a yield to gather more events
    /// (`worth_a_yield`).
    pub(crate) fn start(writer: Arc<dyn ChainWriter>, yields: bool) -> Chainer {
        let (requests, rx) = mpsc::channel::<Request>(MAX_DIRECT * 4);
        let drained = Arc::new(AtomicUsize::new(0));
        let drain_wanted = Arc::new(AtomicBool::new(false));
        tokio::spawn(run(writer.clone(), rx, drain_wanted.clone(), drained.clone(), yields));
        tokio::spawn(tidy(writer, drained));
        Chainer {
            requests: Some(requests),
            drain_wanted,
        }
    }

    /// A chainer that writes nothing: a flush returns at once (the log is read as it stands,
    /// without the events still queued) and an append is refused. For a process that must not
    /// write, such as an audit verification of a backup, a standby or a read-only role.
    pub(crate) fn read_only() -> Chainer {
        Chainer {
            requests: None,
            drain_wanted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Chains `events` and returns once they are durable.
    pub(crate) async fn append(&self, events: Vec<NewAuditEvent>) -> Result<(), StoreError> {
        self.request(events, false).await
    }

    /// Returns once every event queued by a transaction committed before the call is chained.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        self.request(Vec::new(), true).await
    }

    /// Asks for the queue to be drained soon, without waiting. When the channel is full, cycles
    /// are already due, and the next one drains.
    pub(crate) fn nudge(&self) {
        let Some(requests) = &self.requests else { return };
        self.drain_wanted.store(true, Ordering::Release);
        let _ = requests.try_send(Request {
            events: Vec::new(),
            drain: false,
            waiter: None,
        });
    }

    async fn request(&self, events: Vec<NewAuditEvent>, drain: bool) -> Result<(), StoreError> {
        let Some(requests) = &self.requests else {
            return if events.is_empty() {
                Ok(())
            } else {
                Err(StoreError::Unavailable("the database is opened read-only".into()))
            };
        };
        let (waiter, done) = oneshot::channel();
        requests
            .send(Request {
                events,
                drain,
                waiter: Some(waiter),
            })
            .await
            .map_err(|_| stopped())?;
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.into_error()),
            Err(_) => Err(stopped()),
        }
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("audit chainer stopped".into())
}

async fn run(
    writer: Arc<dyn ChainWriter>,
    mut rx: mpsc::Receiver<Request>,
    drain_wanted: Arc<AtomicBool>,
    drained: Arc<AtomicUsize>,
    yields: bool,
) {
    let mut events = Vec::with_capacity(MAX_DIRECT);
    let mut waiters = Vec::with_capacity(MAX_DIRECT);
    let mut last_cycle = 0;
    let mut blocked_logged: Option<tokio::time::Instant> = None;
    loop {
        let mut drain = false;
        match tokio::time::timeout(SWEEP_EVERY, rx.recv()).await {
            Ok(Some(mut request)) => {
                if yields && worth_a_yield(last_cycle) {
                    // The rest of a facts answer's checks join this cycle rather than wait a
                    // commit for the next (`worth_a_yield`); again while yielding brings more,
                    // at most `MAX_YIELDS` times a cycle.
                    for _ in 0..MAX_YIELDS {
                        let waiting = rx.len();
                        tokio::task::yield_now().await;
                        if rx.len() == waiting {
                            break;
                        }
                    }
                }
                loop {
                    events.append(&mut request.events);
                    drain |= request.drain;
                    waiters.extend(request.waiter.map(|w| (w, request.drain)));
                    if events.len() >= MAX_DIRECT {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(next) => request = next,
                        Err(_) => break,
                    }
                }
            }
            Ok(None) => return,
            // Idle: chain what a stopped process may have left, if anything.
            Err(_) => match writer.has_queued().await {
                Ok(true) => drain = true,
                Ok(false) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "audit queue probe failed");
                    continue;
                }
            },
        }
        // Cleared before the cycle reads the queue: a nudge after this point is for rows the
        // cycle may not see, and sets it again.
        drain |= drain_wanted.swap(false, Ordering::AcqRel);
        let (first, rest) = cycle(writer.as_ref(), &events, drain, &drained).await;
        let first = first.map_err(|e| Failure::of(&e));
        let rest = rest.map_err(|e| Failure::of(&e));
        for e in [&first, &rest].into_iter().filter_map(|r| r.as_ref().err()) {
            match e {
                Failure::Blocked(e) => {
                    if blocked_logged.is_none_or(|at| at.elapsed() >= BLOCKED_LOG_EVERY) {
                        blocked_logged = Some(tokio::time::Instant::now());
                        tracing::error!(
                            error = %e,
                            "the audit chain cannot grow: the record of its head (audit_head) is behind events \
                             already chained, so every change's events stay queued and eligibility checks fail; \
                             `passerelle audit verify` names the first event past the head (head_behind)"
                        );
                    }
                }
                Failure::Other(e) => tracing::warn!(error = %e, "audit chain cycle failed"),
            }
        }
        for (waiter, drain) in waiters.drain(..) {
            // The first transaction chained every direct event: a later one failing (draining a
            // long queue) matters only to whoever waits for the queue.
            let result = if drain {
                first.clone().and(rest.clone())
            } else {
                first.clone()
            };
            let _ = waiter.send(result);
        }
        last_cycle = events.len();
        events.clear();
    }
}

/// One transaction with the direct events, then more while the queue still held a full batch:
/// the outcome of the first, and of the ones after it.
async fn cycle(
    writer: &dyn ChainWriter,
    direct: &[NewAuditEvent],
    drain: bool,
    drained: &AtomicUsize,
) -> (Result<(), StoreError>, Result<(), StoreError>) {
    // A wake-up whose drain an earlier cycle already did: nothing to write. Without this, each
    // such nudge cost SQLite a write transaction on its single writer connection.
    if direct.is_empty() && !drain {
        return (Ok(()), Ok(()));
    }
    let mut taken = match chain_within(writer, direct, drain).await {
        Ok(taken) => taken,
        Err(e) => return (Err(e), Ok(())),
    };
    drained.fetch_add(taken, Ordering::Relaxed);
    while taken as i64 >= QUEUE_BATCH {
        taken = match chain_within(writer, &[], true).await {
            Ok(taken) => taken,
            Err(e) => return (Ok(()), Err(e)),
        };
        drained.fetch_add(taken, Ordering::Relaxed);
    }
    (Ok(()), Ok(()))
}

/// Tidies the queue once a second after rows were drained from it.
async fn tidy(writer: Arc<dyn ChainWriter>, drained: Arc<AtomicUsize>) {
    let mut every = tokio::time::interval(TIDY_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if Arc::strong_count(&drained) == 1 {
            return; // the chainer is gone
        }
        if drained.swap(0, Ordering::Relaxed) > 0 {
            if let Err(e) = writer.tidy().await {
                tracing::debug!(error = %e, "audit queue tidy failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Takes a full queue batch on its first call and fails every call after it.
    struct FailsAfterFirst {
        calls: Mutex<usize>,
    }

    #[async_trait]
    impl ChainWriter for FailsAfterFirst {
        async fn chain(&self, _direct: &[NewAuditEvent], _drain: bool) -> Result<usize, StoreError> {
            let mut calls = self.calls.lock().unwrap();
            *calls += 1;
            if *calls == 1 {
                Ok(QUEUE_BATCH as usize)
            } else {
                Err(StoreError::Unavailable("down".into()))
            }
        }

        async fn has_queued(&self) -> Result<bool, StoreError> {
            Ok(false)
        }

        async fn tidy(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// Records how many direct events each cycle carried; its first cycle commits only when
    /// `first_commits` is notified.
    #[derive(Default)]
    struct Records {
        cycles: Mutex<Vec<usize>>,
        first_commits: tokio::sync::Notify,
    }

    #[async_trait]
    impl ChainWriter for Records {
        async fn chain(&self, direct: &[NewAuditEvent], _drain: bool) -> Result<usize, StoreError> {
            let first = {
                let mut cycles = self.cycles.lock().unwrap();
                cycles.push(direct.len());
                cycles.len() == 1
            };
            if first {
                self.first_commits.notified().await;
            }
            Ok(0)
        }

        async fn has_queued(&self) -> Result<bool, StoreError> {
            Ok(false)
        }

        async fn tidy(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// Never answers its first call, as a connection whose link went silent; answers the others.
    #[derive(Default)]
    struct SilentOnce {
        calls: Mutex<usize>,
    }

    #[async_trait]
    impl ChainWriter for SilentOnce {
        async fn chain(&self, _direct: &[NewAuditEvent], _drain: bool) -> Result<usize, StoreError> {
            let first = {
                let mut calls = self.calls.lock().unwrap();
                *calls += 1;
                *calls == 1
            };
            if first {
                std::future::pending::<()>().await;
            }
            Ok(0)
        }

        async fn has_queued(&self) -> Result<bool, StoreError> {
            Ok(false)
        }

        async fn tidy(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// A transaction that never answers is given up at the deadline: its check hears of it, and
    /// the chainer goes on with the next, where it waited for ever.
    #[tokio::test]
    async fn a_transaction_that_never_answers_is_given_up() {
        let chainer = Chainer::start(Arc::new(SilentOnce::default()), true);
        let started = std::time::Instant::now();
        let first = chainer.append(vec![event()]).await;
        assert!(
            matches!(&first, Err(StoreError::Unavailable(e)) if e.contains("given up")),
            "{first:?}"
        );
        assert!(started.elapsed() >= CHAIN_DEADLINE);
        let next = tokio::time::timeout(Duration::from_secs(5), chainer.append(vec![event()])).await;
        assert!(matches!(next, Ok(Ok(()))), "{next:?}");
    }

    fn event() -> NewAuditEvent {
        NewAuditEvent {
            at: chrono::Utc::now(),
            organization: "cms-a".into(),
            subject: "desk".into(),
            action: "eligibility.eligible".into(),
            resource_type: "beneficiary".into(),
            resource_id: "p".into(),
            request_id: "r".into(),
        }
    }

    /// Checks woken together (by their facts statement's answer) append together: the first
    /// append wakes the chainer, which on one worker would run next and carry that event alone;
    /// under load (the last cycle carried several) it yields, and the cycle carries all of them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn checks_woken_together_share_one_cycle() {
        let writer = Arc::new(Records::default());
        let chainer = Arc::new(Chainer::start(writer.clone(), true));
        let append = |n: usize| {
            let chainer = chainer.clone();
            tokio::spawn(async move { chainer.append(vec![event(); n]).await })
        };
        // Load first: two appends wait while the first cycle commits, and the next carries both.
        let first = append(1);
        while writer.cycles.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let (second, third) = (append(1), append(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.first_commits.notify_one();
        for appended in [first, second, third] {
            assert!(appended.await.unwrap().is_ok());
        }
        let checks = crate::batch_loader::spawn_woken_together((0..8).map(|_| {
            let chainer = chainer.clone();
            async move { chainer.append(vec![event()]).await }
        }))
        .await;
        for check in checks {
            assert!(check.await.unwrap().is_ok());
        }
        assert_eq!(*writer.cycles.lock().unwrap(), [1, 2, 8]);
    }

    /// A check's event was chained by the cycle's first transaction: a later one, draining the
    /// rest of a long queue, failing does not turn the check into a 503. A flush, which waits
    /// for the queue, does hear of it.
    #[tokio::test]
    async fn a_later_transaction_failing_fails_only_who_waits_for_the_queue() {
        let chainer = Chainer::start(Arc::new(FailsAfterFirst { calls: Mutex::new(0) }), true);
        let appended = chainer.append(vec![event()]).await;
        assert!(appended.is_ok(), "{appended:?}");
        let chainer = Chainer::start(Arc::new(FailsAfterFirst { calls: Mutex::new(0) }), true);
        let flushed = chainer.flush().await;
        assert!(matches!(flushed, Err(StoreError::Unavailable(_))), "{flushed:?}");
    }

    /// Every event's `seq` taken: the head is behind events already chained.
    struct HeadBehind;

    #[async_trait]
    impl ChainWriter for HeadBehind {
        async fn chain(&self, _direct: &[NewAuditEvent], _drain: bool) -> Result<usize, StoreError> {
            Err(StoreError::Conflict {
                constraint: "audit_events_pkey".into(),
            })
        }

        async fn has_queued(&self) -> Result<bool, StoreError> {
            Ok(false)
        }

        async fn tidy(&self) -> Result<(), StoreError> {
            Ok(())
        }
    }

    /// A chain that cannot grow is told as such, not as a database out of reach, so that a
    /// verification can still walk it and name why.
    #[tokio::test]
    async fn a_head_behind_its_events_blocks_the_chain() {
        let chainer = Chainer::start(Arc::new(HeadBehind), true);
        for result in [chainer.append(vec![event()]).await, chainer.flush().await] {
            assert!(matches!(result, Err(StoreError::ChainBlocked(_))), "{result:?}");
        }
    }
}
