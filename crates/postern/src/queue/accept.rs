//! Group commit. Every accept, from HTTP or SMTP, goes through one writer that gathers
//! whatever arrived while the previous commit was in flight and writes it in one transaction.
//! Under load, one commit covers hundreds of messages; idle, a single message commits at once.
//! An accept is answered only after its transaction has committed and reached the disk. On an
//! SQLite file the writer is two threads of its own, one committing and one flushing the
//! write-ahead log, so the next batch commits while the last one flushes ([`sqlite_writer`]);
//! on PostgreSQL (and in-memory SQLite) it is a task, and on PostgreSQL a few batches commit
//! at once.

use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::guard::{Guard, Pause, Pauses};
use crate::providers::Channel;
use crate::store::{AcceptCommitter, Inserted, NewMessage, Pending, Store};
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
    /// Starts the writer: on an SQLite file two threads of its own ([`sqlite_writer`]),
    /// otherwise a task. It stops once every `Acceptor` clone is dropped and the channel has
    /// drained, so nothing that was sent to it is left unanswered.
    pub fn start(
        store: Store,
        wake: Arc<Notify>,
        max_batch: usize,
        metrics: Metrics,
        pauses: Pauses,
        guard: Option<Guard>,
    ) -> std::io::Result<(Self, JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel::<Job>(max_batch * 4);
        let handle = match store.accept_committer() {
            Some(committer) => sqlite_writer(committer, rx, wake, max_batch, metrics)?,
            None => tokio::spawn(writer(store, rx, wake, max_batch, metrics)),
        };
        Ok((Self { tx, pauses, guard }, handle))
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
        // What the detector needs, taken before the message goes to the writer; it observes
        // only once the message is durable.
        let seen = self.guard.as_ref().map(|g| g.prepare(&msg));
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job { msg, reply })
            .await
            .map_err(|_| AcceptError::ShuttingDown)?;
        let answer = rx.await.map_err(|_| AcceptError::ShuttingDown)??;
        if let (Some(g), Some(seen), Inserted::New { .. }) = (&self.guard, seen, &answer) {
            g.observe(seen);
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

/// Batches committing but not yet answered, in the task writer (PostgreSQL, in-memory SQLite);
/// the bound makes a stalled database stop the intake (callers wait on the channel) instead of
/// piling batches up in memory. The SQLite threads hold at most two.
const IN_FLIGHT_BATCHES: usize = 8;

/// Group commits in flight at once: SQLite has one writer (its flush runs after, see
/// [`IN_FLIGHT_BATCHES`]); PostgreSQL commits concurrent transactions with one WAL flush of
/// its own, so a few batches in flight keep it busy while each waits for its flush.
fn concurrent_commits(store: &Store) -> usize {
    match store {
        Store::Sqlite(_) => 1,
        Store::Postgres(_) => 4,
    }
}

async fn writer(
    store: Store,
    mut rx: mpsc::Receiver<Job>,
    wake: Arc<Notify>,
    max_batch: usize,
    metrics: Metrics,
) {
    let commits = Arc::new(tokio::sync::Semaphore::new(concurrent_commits(&store)));
    let unanswered = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_BATCHES));
    let mut in_flight = tokio::task::JoinSet::new();
    let mut jobs = Vec::with_capacity(max_batch);
    // A batch is whatever arrived while the commits before it held every permit.
    loop {
        let (Ok(slot), Ok(permit)) = (
            unanswered.clone().acquire_owned().await,
            commits.clone().acquire_owned().await,
        ) else {
            break;
        };
        if rx.recv_many(&mut jobs, max_batch).await == 0 {
            break;
        }
        let (msgs, replies): (Vec<NewMessage>, Vec<_>) =
            jobs.drain(..).map(|j| (j.msg, j.reply)).unzip();
        let (store, wake, metrics) = (store.clone(), wake.clone(), metrics.clone());
        in_flight.spawn(async move {
            let started = std::time::Instant::now();
            let n = msgs.len();
            let result = store.insert_messages_deferred(msgs).await;
            drop(permit);
            let (msgs, answers, pending) = match result {
                Ok(done) => done,
                Err(e) => return refuse_batch(&metrics, n, started, &e, replies),
            };
            let flushed = pending.wait().await;
            finish_batch(&metrics, &wake, started, flushed, &msgs, replies, answers);
            drop(slot);
        });
        while let Some(done) = in_flight.try_join_next() {
            log_panic(done);
        }
    }
    // Every caller is answered before the writer ends (shutdown waits for it).
    while let Some(done) = in_flight.join_next().await {
        log_panic(done);
    }
}

/// A batch committed on SQLite, on its way to the flusher.
struct Committed {
    msgs: Vec<NewMessage>,
    replies: Vec<oneshot::Sender<Result<Inserted, AcceptError>>>,
    answers: Vec<Inserted>,
    pending: Pending,
    started: std::time::Instant,
}

/// The group commit on an SQLite file, on two threads of its own instead of a task that sends
/// each commit and each flush to the blocking pool: a commit thread takes whatever has arrived,
/// commits it on the accepts' connection and hands it to a flush thread, which makes it durable
/// and answers. Every hop between threads was a wake-up and a context switch, a sizeable part of
/// an accept's CPU at moderate load.
///
/// The hand-over is a rendezvous (a channel of no capacity): it completes only when the flush
/// thread is free for the batch, that is once the flush before it has ended. So the next commit
/// starts when this batch's flush is next in line: one committed sooner would wait for that
/// same flush anyway, one committed then takes everything that arrived meanwhile, and the
/// flush (paced, [`crate::store::Store::set_flush_pacing`]) covers it too if it returned before
/// the flush began.
fn sqlite_writer(
    committer: AcceptCommitter,
    mut rx: mpsc::Receiver<Job>,
    wake: Arc<Notify>,
    max_batch: usize,
    metrics: Metrics,
) -> std::io::Result<JoinHandle<()>> {
    let (to_flush, committed) = std::sync::mpsc::sync_channel::<Committed>(0);
    let flush_metrics = metrics.clone();
    let flusher = std::thread::Builder::new()
        .name("postern-flush".into())
        .spawn(move || {
            abort_on_panic("flush", move || {
                // Ends once the commit thread has ended and every batch it handed over is answered.
                for c in committed {
                    let flushed = c.pending.wait_blocking();
                    finish_batch(
                        &flush_metrics,
                        &wake,
                        c.started,
                        flushed,
                        &c.msgs,
                        c.replies,
                        c.answers,
                    );
                }
            })
        })?;
    let commit = std::thread::Builder::new()
        .name("postern-commit".into())
        .spawn(move || {
            abort_on_panic("commit", move || {
                let mut jobs = Vec::with_capacity(max_batch);
                // Ends when every `Acceptor` is gone and the channel is empty.
                while rx.blocking_recv_many(&mut jobs, max_batch) > 0 {
                    let started = std::time::Instant::now();
                    let (msgs, replies): (Vec<NewMessage>, Vec<_>) =
                        jobs.drain(..).map(|j| (j.msg, j.reply)).unzip();
                    match committer.insert(&msgs) {
                        Ok((answers, pending)) => {
                            let c = Committed {
                                msgs,
                                replies,
                                answers,
                                pending,
                                started,
                            };
                            if to_flush.send(c).is_err() {
                                // Unreachable while the flush thread lives, and a panic there
                                // stops the process; were it gone, these callers would hear that
                                // the server is shutting down.
                                tracing::error!("the flush thread stopped; accepting no more");
                                break;
                            }
                        }
                        Err(e) => refuse_batch(&metrics, msgs.len(), started, &e, replies),
                    }
                }
            })
        })?;
    Ok(tokio::task::spawn_blocking(move || {
        // A panic in either aborts the process (abort_on_panic), so both end by returning.
        let _ = commit.join();
        let _ = flusher.join();
    }))
}

/// Runs a group-commit thread's loop; a panic in it stops the process. Without the thread no
/// accept could be answered again (a node refusing everything while `/readyz` says ready), and
/// a batch committed but not answered would be delivered while its callers heard the server
/// was shutting down. As after a failed flush, a restart is the honest answer.
fn abort_on_panic(name: &'static str, body: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).is_err() {
        tracing::error!(thread = name, "a group-commit thread panicked; stopping");
        std::process::abort();
    }
}

/// A batch whose commit failed: none of it is stored, and every caller gets the error.
fn refuse_batch(
    metrics: &Metrics,
    n: usize,
    started: std::time::Instant,
    e: &crate::store::StoreError,
    replies: Vec<oneshot::Sender<Result<Inserted, AcceptError>>>,
) {
    metrics.observe_commit(n, started.elapsed());
    tracing::error!(error = %e, batch = n, "group commit failed; answering every message in it with an error");
    let e = AcceptError::Store(e.to_string());
    for reply in replies {
        let _ = reply.send(Err(e.clone()));
    }
}

/// A committed batch once its flush has returned: answered if it is on the disk. A failed
/// flush stops the process: the commit is visible but may not be on the disk, and nobody can
/// say which part of it survives. As PostgreSQL does on a failed fsync: after a restart the
/// database is whatever the disk holds, and the clients, never answered, retry with their
/// idempotency keys. Either answer here could be a lie.
fn finish_batch(
    metrics: &Metrics,
    wake: &Notify,
    started: std::time::Instant,
    flushed: std::io::Result<bool>,
    msgs: &[NewMessage],
    replies: Vec<oneshot::Sender<Result<Inserted, AcceptError>>>,
    answers: Vec<Inserted>,
) {
    match flushed {
        Ok(true) => metrics.log_flushed(),
        Ok(false) => {}
        Err(e) => {
            tracing::error!(error = %e, batch = msgs.len(), "flushing the write-ahead log failed; stopping");
            std::process::abort();
        }
    }
    metrics.observe_commit(msgs.len(), started.elapsed());
    answer(metrics, msgs, replies, answers);
    wake.notify_one();
}

fn log_panic(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        tracing::error!(error = %e, "a group commit task failed; its callers were told the server is shutting down");
    }
}

fn answer(
    metrics: &Metrics,
    msgs: &[NewMessage],
    replies: Vec<oneshot::Sender<Result<Inserted, AcceptError>>>,
    answers: Vec<Inserted>,
) {
    // Counted per (source, tenant, status) for the whole batch, before anyone is answered: a
    // label lookup per message was a measurable part of an accept, and a batch has few.
    let mut counts: Vec<(&str, &str, &str, u64)> = Vec::new();
    for (answer, m) in answers.iter().zip(msgs) {
        if let Inserted::New { status, .. } = answer {
            let key = (m.source, m.tenant_id.as_str(), status.as_str());
            match counts.iter_mut().find(|c| (c.0, c.1, c.2) == key) {
                Some(c) => c.3 += 1,
                None => counts.push((key.0, key.1, key.2, 1)),
            }
        }
    }
    for (source, tenant, status, n) in counts {
        metrics.accepted_n(source, n);
        metrics.messages_n(tenant, "email", "none", "accepted", n);
        if status != "queued" {
            metrics.messages_n(tenant, "email", "none", status, n);
        }
    }
    for (reply, answer) in replies.into_iter().zip(answers) {
        let _ = reply.send(Ok(answer));
    }
}
