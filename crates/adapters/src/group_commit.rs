//! Group commit of audit events that are not part of another change (eligibility checks): each
//! caller waits until its event is durable, but concurrent callers share one transaction. While
//! one batch commits, the next one gathers in the queue, so the batch size follows the load.

use std::sync::Arc;

use passerelle_domain::audit::NewAuditEvent;
use passerelle_domain::error::StoreError;
use passerelle_domain::ports::AuditStore;
use tokio::sync::{mpsc, oneshot};

type Waiter = oneshot::Sender<Result<(), String>>;

#[derive(Clone)]
pub struct AuditGroupCommit {
    queue: mpsc::Sender<(NewAuditEvent, Waiter)>,
}

/// Most events committed in one transaction.
pub const MAX_GROUP: usize = 512;

impl AuditGroupCommit {
    pub fn start(store: Arc<dyn AuditStore>) -> AuditGroupCommit {
        let (queue, mut rx) = mpsc::channel::<(NewAuditEvent, Waiter)>(MAX_GROUP * 4);
        tokio::spawn(async move {
            let mut events = Vec::with_capacity(MAX_GROUP);
            let mut waiters = Vec::with_capacity(MAX_GROUP);
            while let Some((event, waiter)) = rx.recv().await {
                events.push(event);
                waiters.push(waiter);
                while events.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok((event, waiter)) => {
                            events.push(event);
                            waiters.push(waiter);
                        }
                        Err(_) => break,
                    }
                }
                let result = store.append_audit(&events).await.map_err(|e| e.to_string());
                for waiter in waiters.drain(..) {
                    let _ = waiter.send(result.clone());
                }
                events.clear();
            }
        });
        AuditGroupCommit { queue }
    }

    /// Returns once the event is committed.
    pub async fn append(&self, event: NewAuditEvent) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send((event, tx))
            .await
            .map_err(|_| StoreError::Unavailable("audit committer stopped".into()))?;
        match rx.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Unavailable(e)),
            Err(_) => Err(StoreError::Unavailable("audit committer stopped".into())),
        }
    }
}
