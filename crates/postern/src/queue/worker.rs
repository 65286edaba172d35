//! The delivery loop of one node ([`Worker`]): claim due messages in batches, run
//! [`deliver_one`] on them concurrently, write the outcomes back in batches.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc, watch};

use crate::clock::SharedClock;
use crate::domain::MessageStatus;
use crate::providers::health::Health;
use crate::store::{Completion, Store};
use crate::telemetry::Metrics;

use super::deliver::{DeliveryPolicy, Dispatch, deliver_one};

/// The delivery loop of one node.
pub struct Worker {
    pub store: Store,
    pub dispatch: Dispatch,
    pub policy: DeliveryPolicy,
    pub clock: SharedClock,
    pub node: String,
    pub concurrency: usize,
    pub lease_ms: i64,
    pub wake: Arc<Notify>,
    pub metrics: Metrics,
}

const IDLE_POLL: Duration = Duration::from_millis(200);
const MAX_CLAIM: usize = 128;
const COMPLETE_BATCH: usize = 64;
const CLAIM_GATHER: Duration = Duration::from_millis(10);

impl Worker {
    /// Runs until `stop` turns true, then waits up to `drain` for deliveries in flight and
    /// writes their outcomes. Claims left unfinished are recovered at the next start.
    pub async fn run(self, mut stop: watch::Receiver<bool>, drain: Duration) {
        let this = Arc::new(self);
        let (done_tx, done_rx) = mpsc::unbounded_channel::<Completion>();
        let completer = tokio::spawn(completer(
            this.store.clone(),
            this.node.clone(),
            done_rx,
            this.metrics.clone(),
            this.dispatch.health.clone(),
        ));
        let slots = Arc::new(Semaphore::new(this.concurrency));
        // The attempts in flight, so that a drain that runs out can stop them.
        let mut attempts = tokio::task::JoinSet::new();
        let mut recovered_at = 0_i64;
        loop {
            while attempts.try_join_next().is_some() {}
            if *stop.borrow() {
                break;
            }
            let now = this.clock.now_ms();
            if now - recovered_at > this.lease_ms / 2 {
                // Leases that ran out, this node's or another's (PostgreSQL); never a claim
                // whose lease still runs, which may be mid-send. Cheap when there are none.
                if let Err(e) = this.store.recover_claims(None, now, false).await {
                    tracing::warn!(error = %e, "recovering expired claims failed");
                }
                recovered_at = now;
            }
            // Claim in batches: a claim is a write (and on SQLite an fsync), so refilling one
            // slot at a time would make claiming the bottleneck. Wait for a quarter of the
            // slots, or briefly, before claiming again.
            let mut free = slots.available_permits();
            let want = (this.concurrency / 4).max(1);
            if free < want {
                let wanted = u32::try_from(want).unwrap_or(1);
                tokio::select! {
                    p = slots.clone().acquire_many_owned(wanted) => drop(p),
                    _ = tokio::time::sleep(CLAIM_GATHER), if free > 0 => {}
                    _ = stop.changed() => continue,
                }
                free = slots.available_permits();
                if free == 0 {
                    continue;
                }
            }
            let claimed = match this
                .store
                .claim_due(&this.node, now, this.lease_ms, free.min(MAX_CLAIM) as i64)
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming messages failed; retrying");
                    tokio::time::sleep(IDLE_POLL).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = this.wake.notified() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            for msg in claimed {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    break;
                };
                let (w, tx) = (this.clone(), done_tx.clone());
                let (tenant, key) = (msg.tenant_id.clone(), msg.key_id.clone());
                attempts.spawn(async move {
                    let started = std::time::Instant::now();
                    let c = deliver_one(msg, &w.dispatch, &w.policy, &w.clock).await;
                    w.metrics
                        .delivery_outcome(c.provider.as_deref().unwrap_or(""), c.status.as_str());
                    w.metrics.attempt(
                        &tenant,
                        c.provider.as_deref(),
                        c.status.as_str(),
                        started.elapsed(),
                        c.at - c.created_at,
                    );
                    w.metrics.rates().attempt(&tenant, key.as_deref(), &c);
                    let _ = tx.send(c);
                    drop(permit);
                });
            }
        }
        let all = u32::try_from(this.concurrency).unwrap_or(u32::MAX);
        if tokio::time::timeout(drain, slots.acquire_many(all))
            .await
            .is_err()
        {
            tracing::warn!(
                attempts = attempts.len(),
                "drain timed out; stopping the attempts still running: their claims are recovered, in doubt, at the next start"
            );
            attempts.shutdown().await;
        }
        drop(done_tx);
        let _ = completer.await;
        this.dispatch.providers.shutdown().await;
    }
}

/// A message deferred by a provider that has closed since (the breaker opened while its
/// outcome waited to be written) is due at once, for the next provider of its route. The
/// health watcher pulls forward what was already written when the breaker opened; this covers
/// what was written after.
fn retry_closed_providers_now(batch: &mut [Completion], health: &Health) {
    use crate::providers::health::HealthState;
    for c in batch
        .iter_mut()
        .filter(|c| c.status == MessageStatus::Deferred && c.next_attempt_at > c.created_at)
    {
        let closed = c.provider.as_deref().and_then(|p| health.state(p));
        if matches!(closed, Some(HealthState::Down | HealthState::Suspended)) {
            c.next_attempt_at = c.created_at.min(c.at);
        }
    }
}

/// Writes outcomes in batches. A failed write is retried: until it lands, the claim stays
/// and the message is recovered (in doubt) rather than lost.
async fn completer(
    store: Store,
    node: String,
    mut rx: mpsc::UnboundedReceiver<Completion>,
    metrics: Metrics,
    health: Health,
) {
    // Small batches: on SQLite a write holds the one write lock, and accepts queue behind it.
    let mut batch = Vec::with_capacity(COMPLETE_BATCH);
    while rx.recv_many(&mut batch, COMPLETE_BATCH).await > 0 {
        retry_closed_providers_now(&mut batch, &health);
        let mut tries = 0;
        while let Err(e) = store.complete(&node, &batch).await {
            tries += 1;
            tracing::warn!(error = %e, tries, "writing delivery outcomes failed; retrying");
            if tries >= 50 {
                tracing::error!(
                    "giving up writing {} outcomes; they will be recovered at restart",
                    batch.len()
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100 * tries.min(10))).await;
        }
        metrics.completed(batch.len());
        batch.clear();
    }
}
