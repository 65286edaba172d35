//! Group commit. Every accept, from HTTP or SMTP, goes through one writer task that gathers
//! whatever arrived while the previous commit was in flight and writes it in one transaction.
//! Under load, one fsync covers hundreds of messages; idle, a single message commits at once.
//! An accept is answered only after its transaction has committed.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::guard::{Guard, Pause, Pauses};
use crate::providers::Channel;
use crate::store::{Inserted, NewMessage, Store};
use crate::telemetry::Metrics;

struct Job {
    msg: NewMessage,
    reply: oneshot::Sender<Result<Inserted, AcceptError>>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AcceptError {
    #[error("the message store is unavailable; nothing was accepted ({0})")]
    Store(String),
    #[error("the server is shutting down")]
    ShuttingDown,
}

#[derive(Clone)]
pub struct Acceptor {
    tx: mpsc::Sender<Job>,
    pauses: Pauses,
    guard: Option<Guard>,
}

impl Acceptor {
    /// Starts the writer. It stops once every `Acceptor` clone is dropped and the channel has
    /// drained, so nothing that was sent to it is left unanswered.
    pub fn start(
        store: Store,
        wake: Arc<Notify>,
        max_batch: usize,
        metrics: Metrics,
        pauses: Pauses,
        guard: Option<Guard>,
    ) -> (Self, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel::<Job>(max_batch * 4);
        let handle = tokio::spawn(writer(store, rx, wake, max_batch, metrics));
        (Self { tx, pauses, guard }, handle)
    }

    /// Makes the message durable; a message that a pause covers is stored as held.
    pub async fn accept(&self, mut msg: NewMessage) -> Result<Inserted, AcceptError> {
        if msg.held.is_none()
            && let Some(p) =
                self.pauses
                    .holding(&msg.tenant_id, msg.key_id.as_deref(), Channel::Email)
        {
            msg.held = Some((p.scope.tag(), held_because(&p)));
        }
        let (tenant, key, rcpts) = (
            msg.tenant_id.clone(),
            msg.key_id.clone(),
            msg.recipients.len(),
        );
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { msg, reply })
            .await
            .map_err(|_| AcceptError::ShuttingDown)?;
        let answer = rx.await.map_err(|_| AcceptError::ShuttingDown)??;
        if let (Some(g), Inserted::New { .. }) = (&self.guard, &answer) {
            g.accepted(&tenant, key.as_deref(), rcpts);
        }
        Ok(answer)
    }
}

/// The event detail of a message a pause holds.
pub fn held_because(p: &Pause) -> String {
    let what = match p.scope.target() {
        "" => p.scope.kind().to_owned(),
        t => format!("{} {t}", p.scope.kind()),
    };
    format!("held: {what} paused by {}: {}", p.actor, p.reason)
}

async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<Job>,
    wake: Arc<Notify>,
    max_batch: usize,
    metrics: Metrics,
) {
    let mut jobs = Vec::with_capacity(max_batch);
    while rx.recv_many(&mut jobs, max_batch).await > 0 {
        let (msgs, replies): (Vec<NewMessage>, Vec<_>) =
            jobs.drain(..).map(|j| (j.msg, j.reply)).unzip();
        let started = std::time::Instant::now();
        let result = store.insert_messages(&msgs).await;
        metrics.observe_commit(msgs.len(), started.elapsed());
        match result {
            Ok(answers) => {
                for ((reply, answer), m) in replies.into_iter().zip(answers).zip(&msgs) {
                    if let Inserted::New { status, .. } = &answer {
                        metrics.accepted(m.source);
                        metrics.message(&m.tenant_id, "email", "none", "accepted");
                        if status != "queued" {
                            metrics.message(&m.tenant_id, "email", "none", status);
                        }
                    }
                    let _ = reply.send(Ok(answer));
                }
                wake.notify_one();
            }
            Err(e) => {
                tracing::error!(error = %e, batch = msgs.len(), "group commit failed; answering every message in it with an error");
                let e = AcceptError::Store(e.to_string());
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
