//! Natural batching of concurrent reads of one kind.
//!
//! On the hot read paths (the eligibility facts behind every check and every claim), a statement
//! costs the database far more in fixed work (waking a backend, starting the executor, ending
//! the transaction) than in finding a handful of rows. Callers that ask at the same moment are
//! therefore answered by one statement: a loader lets at most `in_flight` statements run at once,
//! and each one takes every request that queued while the others ran. Under no load a request
//! goes out alone and at once; under load the batch grows with it, and no request ever waits for
//! a timer.

use std::sync::Arc;

use async_trait::async_trait;
use passerelle_domain::error::StoreError;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Reads many keys in one statement.
#[async_trait]
pub(crate) trait BatchRead: Send + Sync + 'static {
    type Key: Send + 'static;
    type Value: Send + 'static;

    /// One value per key, in the keys' order.
    async fn read(&self, keys: Vec<Self::Key>) -> Result<Vec<Self::Value>, StoreError>;
}

type Waiter<V> = oneshot::Sender<Result<V, StoreError>>;

/// Whether a batcher, woken by a first request, should yield before taking the others:
/// on a multi-threaded runtime the task woken by a request made on its worker runs next, before
/// the other tasks woken with that one (the checks of one facts answer, the requests that came
/// in together) have asked, so they wait a whole statement or commit for the next batch.
/// Yielding lets them join, and only pays off when batches are small but not single: a lone
/// request (concurrency 1) would only wait for the yield, and large batches lose more by
/// starting later than they gain. Measured in deploy/SCALING.md §5.
pub(crate) fn worth_a_yield(last_batch: usize) -> bool {
    (2..YIELD_BELOW).contains(&last_batch)
}

/// The batch size from which a batcher no longer yields (`worth_a_yield`).
const YIELD_BELOW: usize = 32;

pub(crate) struct Loader<R: BatchRead> {
    requests: mpsc::Sender<(R::Key, Waiter<R::Value>)>,
}

impl<R: BatchRead> Loader<R> {
    /// Starts the loader's task on the current runtime.
    /// `yields`: whether a statement's fixed cost makes it worth a yield to gather more
    /// requests (`worth_a_yield`).
    pub(crate) fn start(reader: R, max_batch: usize, in_flight: usize, yields: bool) -> Self {
        let (requests, rx) = mpsc::channel(max_batch * in_flight.max(1) * 4);
        tokio::spawn(run(Arc::new(reader), rx, max_batch.max(1), in_flight.max(1), yields));
        Loader { requests }
    }

    pub(crate) async fn load(&self, key: R::Key) -> Result<R::Value, StoreError> {
        let (waiter, answer) = oneshot::channel();
        self.requests
            .send((key, waiter))
            .await
            .map_err(|_| StoreError::Unavailable("the read batcher has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Internal("a batched read ended without an answer".into()))?
    }
}

async fn run<R: BatchRead>(
    reader: Arc<R>,
    mut rx: mpsc::Receiver<(R::Key, Waiter<R::Value>)>,
    max_batch: usize,
    in_flight: usize,
    yields: bool,
) {
    let slots = Arc::new(Semaphore::new(in_flight));
    let mut last_batch = 0;
    loop {
        // A free slot first, then the requests: while every slot is busy, requests gather in
        // the channel and the next statement takes them all.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        if yields && worth_a_yield(last_batch) {
            tokio::task::yield_now().await;
        }
        let mut batch = Vec::with_capacity(max_batch.min(64));
        batch.push(first);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        last_batch = batch.len();
        let reader = reader.clone();
        tokio::spawn(async move {
            let (keys, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
            let expected = keys.len();
            match reader.read(keys).await {
                Ok(values) if values.len() == expected => {
                    for (waiter, value) in waiters.into_iter().zip(values) {
                        let _ = waiter.send(Ok(value));
                    }
                }
                Ok(_) => {
                    for waiter in waiters {
                        let _ = waiter.send(Err(StoreError::Internal(
                            "a batched read answered a different number of keys".into(),
                        )));
                    }
                }
                Err(e) => {
                    for waiter in waiters {
                        let _ = waiter.send(Err(copy(&e)));
                    }
                }
            }
            drop(slot);
        });
    }
}

/// The same failure for every caller of a failed statement, of the same kind: a caller tells an
/// unreachable or contended database (503, another server) from a fault (500).
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Contention(m) => StoreError::Contention(m.clone()),
        other => StoreError::Internal(other.to_string()),
    }
}

/// Spawns `tasks`, each waiting, then wakes them all at once from the runtime's worker itself,
/// so that all are queued there before any runs: the requests of checks woken together.
#[cfg(test)]
pub(crate) async fn spawn_woken_together<F>(tasks: impl Iterator<Item = F>) -> Vec<tokio::task::JoinHandle<F::Output>>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let release = Arc::new(tokio::sync::Notify::new());
    let handles = tasks
        .map(|task| {
            // Registered now, so that one `notify_waiters` wakes them all.
            let mut notified = Box::pin(release.clone().notified_owned());
            notified.as_mut().enable();
            tokio::spawn(async move {
                notified.await;
                task.await
            })
        })
        .collect();
    tokio::spawn(async move { release.notify_waiters() }).await.unwrap();
    handles
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Doubles its keys and remembers the size of every batch it was given.
    struct Doubler {
        batches: Arc<Mutex<Vec<usize>>>,
        gate: Arc<tokio::sync::Notify>,
    }

    #[async_trait]
    impl BatchRead for Doubler {
        type Key = u32;
        type Value = u32;

        async fn read(&self, keys: Vec<u32>) -> Result<Vec<u32>, StoreError> {
            self.batches.lock().unwrap().push(keys.len());
            if keys.contains(&0) {
                return Err(StoreError::Unavailable("down".into()));
            }
            if keys.contains(&1000) {
                return Err(StoreError::Contention("cancelled by recovery".into()));
            }
            if keys.contains(&1) {
                self.gate.notified().await;
            }
            Ok(keys.into_iter().map(|k| k * 2).collect())
        }
    }

    type Batches = Arc<Mutex<Vec<usize>>>;

    /// A loader of one statement at a time, the sizes of its batches, and the gate that key 1
    /// waits for.
    fn one_at_a_time() -> (Arc<Loader<Doubler>>, Batches, Arc<tokio::sync::Notify>) {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(tokio::sync::Notify::new());
        let doubler = Doubler {
            batches: batches.clone(),
            gate: gate.clone(),
        };
        (Arc::new(Loader::start(doubler, 64, 1, true)), batches, gate)
    }

    #[tokio::test]
    async fn requests_made_while_a_read_runs_share_the_next_statement() {
        let (loader, batches, gate) = one_at_a_time();
        // Key 1 holds the only slot until the gate opens.
        let first = tokio::spawn({
            let loader = loader.clone();
            async move { loader.load(1).await }
        });
        while batches.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let waiting: Vec<_> = (2..12)
            .map(|k| {
                let loader = loader.clone();
                tokio::spawn(async move { loader.load(k).await })
            })
            .collect();
        // Let every waiting request reach the channel before the slot frees.
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        assert_eq!(first.await.unwrap().unwrap(), 2);
        for (k, handle) in (2..12).zip(waiting) {
            assert_eq!(
                handle.await.unwrap().unwrap(),
                k * 2,
                "each caller gets its own key's value"
            );
        }
        assert_eq!(*batches.lock().unwrap(), vec![1, 10]);
    }

    /// Requests made at the same moment on one worker (the checks of requests that arrived
    /// together) share one statement: the first wakes the idle loader, which on one worker
    /// would run next and send it alone; under load (the last statement read several keys) it
    /// yields first.
    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn requests_woken_together_share_one_statement() {
        let (loader, batches, gate) = one_at_a_time();
        // Load first: key 1 holds the only slot while two more wait, and the next statement
        // reads both.
        let load = |k: u32| {
            let loader = loader.clone();
            tokio::spawn(async move { loader.load(k).await })
        };
        let first = load(1);
        while batches.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        let (second, third) = (load(100), load(101));
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        gate.notify_one();
        for (k, loaded) in [(1, first), (100, second), (101, third)] {
            assert_eq!(loaded.await.unwrap().unwrap(), k * 2);
        }
        let requests = spawn_woken_together((2..10).map(|k| {
            let loader = loader.clone();
            async move { loader.load(k).await }
        }))
        .await;
        for (k, request) in (2..10).zip(requests) {
            assert_eq!(request.await.unwrap().unwrap(), k * 2);
        }
        assert_eq!(*batches.lock().unwrap(), [1, 2, 8]);
    }

    #[tokio::test]
    async fn a_failed_statement_fails_each_of_its_callers() {
        let loader = Loader::start(
            Doubler {
                batches: Arc::new(Mutex::new(Vec::new())),
                gate: Arc::new(tokio::sync::Notify::new()),
            },
            64,
            4,
            true,
        );
        assert!(matches!(loader.load(0).await, Err(StoreError::Unavailable(m)) if m == "down"));
        // Contention stays contention: a check then asks the primary (a standby's recovery
        // conflict), a client gets 503, never a 500.
        assert!(matches!(loader.load(1000).await, Err(StoreError::Contention(_))));
        assert_eq!(loader.load(7).await.unwrap(), 14, "the loader goes on after a failure");
    }
}
