//! Delivery. [`deliver_one`] is one attempt for one claimed message, with no loop and no
//! clock of its own; [`Worker`] is the loop around it: claim, deliver concurrently, write the
//! outcomes back in batches.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{Notify, Semaphore, mpsc, watch};

use crate::clock::SharedClock;
use crate::config::QueueConfig;
use crate::domain::{EventKind, MessageStatus, RecipientState};
use crate::providers::{FailureClass, OutboundMessage, Providers, RecipientOutcome};
use crate::store::{Claimed, Completion, NewEvent, Recipient, Store};
use crate::telemetry::Metrics;

/// Retry schedule and limits.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    pub backoff_base_ms: i64,
    pub backoff_max_ms: i64,
    /// Ordered provider names; the first one that exists is used.
    pub route: Vec<String>,
}

impl DeliveryPolicy {
    pub fn from_config(q: &QueueConfig, route: Vec<String>) -> Self {
        Self {
            backoff_base_ms: (q.backoff_base_secs * 1000) as i64,
            backoff_max_ms: (q.backoff_max_secs * 1000) as i64,
            route,
        }
    }

    /// Exponential backoff with "equal jitter": between half and all of base·2^(n-1), capped.
    /// Jitter spreads retries of a batch that failed together.
    pub fn backoff_ms(&self, attempts: i64, rng: &mut impl Rng) -> i64 {
        let exp = attempts.clamp(1, 30) - 1;
        let full = self
            .backoff_base_ms
            .saturating_mul(1_i64 << exp)
            .min(self.backoff_max_ms)
            .max(1);
        full / 2 + rng.gen_range(0..=full - full / 2)
    }
}

fn event(
    id: &str,
    at: i64,
    kind: EventKind,
    recipient: Option<&str>,
    provider: Option<&str>,
    detail: String,
) -> NewEvent {
    NewEvent {
        message_id: id.to_owned(),
        at,
        kind,
        recipient: recipient.map(str::to_owned),
        provider: provider.map(str::to_owned),
        detail: Some(detail),
    }
}

/// One attempt for one claimed message. Never panics and never loses the message: whatever
/// happens, the answer is a [`Completion`] that moves it on.
pub async fn deliver_one(
    msg: Claimed,
    providers: &Providers,
    policy: &DeliveryPolicy,
    clock: &SharedClock,
) -> Completion {
    let started = clock.now_ms();
    let mut recipients = msg.recipients.clone();
    let mut events = Vec::new();
    let pending: Vec<String> = recipients
        .iter()
        .filter(|r| r.state == RecipientState::Pending)
        .map(|r| r.address.clone())
        .collect();

    let provider = policy.route.iter().find_map(|n| providers.get(n));
    let mut last_error = None;
    let mut provider_name = None;
    match provider {
        None => {
            last_error = Some(format!(
                "no provider of route {:?} is configured",
                policy.route
            ));
        }
        Some(p) => {
            provider_name = Some(p.name().to_owned());
            let out = OutboundMessage {
                id: msg.id.clone(),
                tenant_id: msg.tenant_id.clone(),
                channel: crate::providers::Channel::Email,
                mail_from: msg.mail_from.clone(),
                recipients: pending.clone(),
                raw: Arc::from(msg.raw.as_slice()),
                message_id_header: msg.message_id_header.clone(),
            };
            let pname = p.name();
            let landed_before = if msg.in_doubt {
                p.was_delivered(&out).await
            } else {
                None
            };
            let result = if landed_before == Some(true) {
                Ok(crate::providers::Delivery {
                    recipients: pending
                        .iter()
                        .map(|r| {
                            let response =
                                "found delivered by the attempt before a restart".to_owned();
                            (r.clone(), RecipientOutcome::Delivered { response })
                        })
                        .collect(),
                })
            } else {
                events.push(event(
                    &msg.id,
                    started,
                    EventKind::Attempted,
                    None,
                    Some(pname),
                    format!("attempt {}", msg.attempts),
                ));
                p.send(&out).await
            };
            let now = clock.now_ms();
            match result {
                Ok(delivery) => {
                    for (addr, outcome) in delivery.recipients {
                        let Some(r) = recipients.iter_mut().find(|r| r.address == addr) else {
                            continue;
                        };
                        match outcome {
                            RecipientOutcome::Delivered { response } => {
                                r.state = RecipientState::Delivered;
                                events.push(event(
                                    &msg.id,
                                    now,
                                    EventKind::Delivered,
                                    Some(&addr),
                                    Some(pname),
                                    response,
                                ));
                            }
                            RecipientOutcome::Bounced { reason, .. } => {
                                r.state = RecipientState::Bounced;
                                events.push(event(
                                    &msg.id,
                                    now,
                                    EventKind::Bounced,
                                    Some(&addr),
                                    Some(pname),
                                    reason,
                                ));
                            }
                            RecipientOutcome::Deferred { reason, .. } => {
                                events.push(event(
                                    &msg.id,
                                    now,
                                    EventKind::Deferred,
                                    Some(&addr),
                                    Some(pname),
                                    reason.clone(),
                                ));
                                last_error = Some(reason);
                            }
                        }
                    }
                }
                Err(e) if e.class == FailureClass::Permanent => {
                    for r in recipients
                        .iter_mut()
                        .filter(|r| r.state == RecipientState::Pending)
                    {
                        r.state = RecipientState::Bounced;
                        events.push(event(
                            &msg.id,
                            now,
                            EventKind::Bounced,
                            Some(&r.address),
                            Some(pname),
                            e.message.clone(),
                        ));
                    }
                    last_error = Some(e.message);
                }
                Err(e) => {
                    last_error = Some(e.message);
                }
            }
        }
    }

    let now = clock.now_ms();
    let still_pending = recipients
        .iter()
        .any(|r| r.state == RecipientState::Pending);
    let (status, next_attempt_at) = if still_pending && now < msg.expires_at {
        let delay = policy.backoff_ms(msg.attempts, &mut rand::thread_rng());
        // The last try happens at the end of the window rather than never.
        let next = (now + delay).min(msg.expires_at);
        let why = last_error
            .clone()
            .unwrap_or_else(|| "temporary failure".into());
        events.push(event(
            &msg.id,
            now,
            EventKind::Deferred,
            None,
            provider_name.as_deref(),
            format!("{why}; retry in {} s", (next - now) / 1000),
        ));
        (MessageStatus::Deferred, next)
    } else {
        if still_pending {
            for r in recipients
                .iter_mut()
                .filter(|r| r.state == RecipientState::Pending)
            {
                r.state = RecipientState::Expired;
                let why = format!(
                    "retry window ended after {} attempts; last error: {}",
                    msg.attempts,
                    last_error.as_deref().unwrap_or("none")
                );
                events.push(event(
                    &msg.id,
                    now,
                    EventKind::Expired,
                    Some(&r.address),
                    provider_name.as_deref(),
                    why,
                ));
            }
        }
        (final_status(&recipients), now)
    };
    Completion {
        id: msg.id,
        status,
        recipients,
        next_attempt_at,
        provider: provider_name,
        last_error,
        at: now,
        events,
    }
}

/// A message that reached at least one recipient is delivered; otherwise it bounced if any
/// recipient bounced, else it expired. Per-recipient states keep the detail.
fn final_status(recipients: &[Recipient]) -> MessageStatus {
    if recipients
        .iter()
        .any(|r| r.state == RecipientState::Delivered)
    {
        MessageStatus::Delivered
    } else if recipients
        .iter()
        .any(|r| r.state == RecipientState::Bounced)
    {
        MessageStatus::Bounced
    } else {
        MessageStatus::Expired
    }
}

/// The delivery loop of one node.
pub struct Worker {
    pub store: Store,
    pub providers: Providers,
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
        ));
        let slots = Arc::new(Semaphore::new(this.concurrency));
        let mut recovered_at = 0_i64;
        loop {
            if *stop.borrow() {
                break;
            }
            let now = this.clock.now_ms();
            if now - recovered_at > this.lease_ms / 2 {
                // Another node's expired leases (PostgreSQL); cheap when there are none.
                if let Err(e) = this.store.recover_claims(&this.node, now, false).await {
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
                tokio::spawn(async move {
                    let c = deliver_one(msg, &w.providers, &w.policy, &w.clock).await;
                    w.metrics
                        .delivery_outcome(c.provider.as_deref().unwrap_or(""), c.status.as_str());
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
                "drain timed out; unfinished claims will be recovered at the next start"
            );
        }
        drop(done_tx);
        let _ = completer.await;
        this.providers.shutdown().await;
    }
}

/// Writes outcomes in batches. A failed write is retried: until it lands, the claim stays
/// and the message is recovered (in doubt) rather than lost.
async fn completer(
    store: Store,
    node: String,
    mut rx: mpsc::UnboundedReceiver<Completion>,
    metrics: Metrics,
) {
    // Small batches: on SQLite a write holds the one write lock, and accepts queue behind it.
    let mut batch = Vec::with_capacity(COMPLETE_BATCH);
    while rx.recv_many(&mut batch, COMPLETE_BATCH).await > 0 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let p = DeliveryPolicy {
            backoff_base_ms: 1000,
            backoff_max_ms: 60_000,
            route: vec![],
        };
        let mut rng = rand::thread_rng();
        for _ in 0..200 {
            let b1 = p.backoff_ms(1, &mut rng);
            assert!((500..=1000).contains(&b1), "{b1}");
            let b3 = p.backoff_ms(3, &mut rng);
            assert!((2000..=4000).contains(&b3), "{b3}");
            let b20 = p.backoff_ms(20, &mut rng);
            assert!((30_000..=60_000).contains(&b20), "{b20}");
        }
    }
}
