//! One delivery attempt: [`deliver_one`] takes one claimed message through its route, with
//! no loop and no clock of its own, and says what to write back; the retry schedule
//! ([`DeliveryPolicy`]) and the providers it may use ([`Dispatch`]).

use std::sync::Arc;

use rand::Rng;

use crate::clock::SharedClock;
use crate::config::{QueueConfig, SuppressionConfig};
use crate::domain::{EventKind, MessageStatus, RecipientState};
use crate::guard::{Guard, Pauses};
use crate::providers::health::{Health, Signal};
use crate::providers::limits::Limits;
use crate::providers::{
    Channel, Delivery, FailureClass, OutboundMessage, Provider, Providers, RecipientOutcome,
};
use crate::queue::routing::Routes;
use crate::store::{Claimed, Completion, NewEvent, Recipient};

/// Retry schedule and limits.
#[derive(Debug, Clone)]
pub struct DeliveryPolicy {
    pub backoff_base_ms: i64,
    pub backoff_max_ms: i64,
    /// Add hard-bounced recipients to the tenant's suppression list.
    pub suppress_hard_bounces: bool,
    /// Send from `bounce+<message id>@<domain>` (VERP) when set.
    pub bounce_domain: Option<String>,
}

impl DeliveryPolicy {
    pub fn from_config(cfg: &crate::config::Config) -> Self {
        let (q, s): (&QueueConfig, &SuppressionConfig) = (&cfg.queue, &cfg.suppression);
        Self {
            backoff_base_ms: (q.backoff_base_secs * 1000) as i64,
            backoff_max_ms: (q.backoff_max_secs * 1000) as i64,
            suppress_hard_bounces: s.hard_bounces,
            bounce_domain: cfg.feedback.bounce_domain.clone(),
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

/// Everything an attempt needs to choose a provider and call it; cheap to clone.
#[derive(Clone)]
pub struct Dispatch {
    pub providers: Providers,
    pub pauses: Pauses,
    pub guard: Option<Guard>,
    pub health: Health,
    pub routes: Routes,
    pub limits: Limits,
}

impl Dispatch {
    /// Routes and limits straight from the config, every provider healthy.
    pub fn from_config(
        cfg: &crate::config::Config,
        providers: Providers,
        pauses: Pauses,
        guard: Option<Guard>,
        now: i64,
    ) -> Self {
        Self {
            pauses,
            guard,
            health: Health::new(providers.names(), now),
            routes: Routes::new(cfg.routes.default.clone()),
            limits: Limits::new(&cfg.provider_limits),
            providers,
        }
    }
}

/// When every provider of a route is closed and none says when it reopens, look again after
/// this long.
const ALL_CLOSED_RETRY_MS: i64 = 1_000;

/// The state of one attempt as it goes.
struct Attempt<'a> {
    msg: &'a Claimed,
    recipients: Vec<Recipient>,
    events: Vec<NewEvent>,
    last_error: Option<String>,
    /// The last provider called.
    provider: Option<String>,
    /// Hard-bounced recipients, for the suppression list.
    suppress: Vec<(String, String)>,
    /// Whether some provider took the call (answered or failed for this message alone); if
    /// not, every provider of the route was closed or refused as a whole.
    reached: bool,
}

impl<'a> Attempt<'a> {
    fn event(&mut self, at: i64, kind: EventKind, rcpt: Option<&str>, detail: String) {
        let e = event(
            &self.msg.id,
            at,
            kind,
            rcpt,
            self.provider.as_deref(),
            detail,
        );
        self.events.push(e);
    }

    fn pending(&self) -> Vec<String> {
        self.recipients
            .iter()
            .filter(|r| r.state == RecipientState::Pending)
            .map(|r| r.address.clone())
            .collect()
    }

    fn apply(&mut self, now: i64, delivery: Delivery) {
        for (addr, outcome) in delivery.recipients {
            let Some(i) = self.recipients.iter().position(|r| r.address == addr) else {
                continue;
            };
            match outcome {
                RecipientOutcome::Delivered { response } => {
                    self.recipients[i].state = RecipientState::Delivered;
                    self.event(now, EventKind::Delivered, Some(&addr), response);
                }
                RecipientOutcome::Bounced { code, reason } => {
                    self.recipients[i].state = RecipientState::Bounced;
                    if let Some(kind) = hard_bounce(code, &reason) {
                        self.suppress.push((addr.clone(), kind.to_owned()));
                    }
                    self.event(now, EventKind::Bounced, Some(&addr), reason);
                }
                RecipientOutcome::Deferred { reason, .. } => {
                    self.event(now, EventKind::Deferred, Some(&addr), reason.clone());
                    self.last_error = Some(reason);
                }
            }
        }
    }

    fn bounce_pending(&mut self, now: i64, reason: &str) {
        for addr in self.pending() {
            if let Some(r) = self.recipients.iter_mut().find(|r| r.address == addr) {
                r.state = RecipientState::Bounced;
            }
            self.event(now, EventKind::Bounced, Some(&addr), reason.to_owned());
        }
    }

    /// Where the message goes next: final, or deferred until the next try.
    fn finish(
        mut self,
        dispatch: &Dispatch,
        policy: &DeliveryPolicy,
        route: &[String],
        now: i64,
    ) -> Completion {
        let msg = self.msg;
        let still_pending = !self.pending().is_empty();
        let (status, next_attempt_at) = if still_pending && now < msg.expires_at {
            let delay = if !self.reached {
                // No provider could take it: look again as soon as one may.
                dispatch
                    .health
                    .next_open(route, now)
                    .map_or(ALL_CLOSED_RETRY_MS, |at| at - now)
                    .clamp(
                        ALL_CLOSED_RETRY_MS / 4,
                        policy.backoff_max_ms.max(ALL_CLOSED_RETRY_MS / 4),
                    )
            } else if self.provider_left(dispatch) {
                // The provider that tried has since been moved away from or closed: the
                // next one in the route may take it now, in its original place in line.
                msg.created_at.min(now) - now
            } else {
                policy.backoff_ms(msg.attempts, &mut rand::thread_rng())
            };
            // The last try happens at the end of the window rather than never.
            let next = (now + delay).min(msg.expires_at);
            let why = self
                .last_error
                .clone()
                .unwrap_or_else(|| "temporary failure".into());
            self.event(
                now,
                EventKind::Deferred,
                None,
                format!("{why}; retry in {} s", (next - now).max(0) / 1000),
            );
            (MessageStatus::Deferred, next)
        } else {
            if still_pending {
                let why = format!(
                    "retry window ended after {} attempts; last error: {}",
                    msg.attempts,
                    self.last_error.as_deref().unwrap_or("none")
                );
                for addr in self.pending() {
                    if let Some(r) = self.recipients.iter_mut().find(|r| r.address == addr) {
                        r.state = RecipientState::Expired;
                    }
                    self.event(now, EventKind::Expired, Some(&addr), why.clone());
                }
            }
            (final_status(&self.recipients), now)
        };
        Completion {
            id: msg.id.clone(),
            created_at: msg.created_at,
            held_by: None,
            status,
            recipients: self.recipients,
            next_attempt_at,
            provider: self.provider,
            last_error: self.last_error,
            at: now,
            events: self.events,
            suppress: if policy.suppress_hard_bounces {
                self.suppress
            } else {
                Vec::new()
            },
        }
    }
}

impl Attempt<'_> {
    /// Whether the provider of this attempt has left the message's route (a move made while
    /// the call was running) or closed since: then the retry should not wait for it.
    fn provider_left(&self, dispatch: &Dispatch) -> bool {
        use crate::providers::health::HealthState;
        let Some(p) = &self.provider else {
            return false;
        };
        !dispatch.routes.resolve(&self.msg.tenant_id).contains(p)
            || matches!(
                dispatch.health.state(p),
                Some(HealthState::Down | HealthState::Suspended)
            )
    }
}

/// One attempt for one claimed message. Never panics and never loses the message: whatever
/// happens, the answer is a [`Completion`] that moves it on.
///
/// The providers of the tenant's route are tried in order, skipping those whose breaker is
/// open. A provider that refuses as a whole (down, throttling, credentials, suspension) did
/// not take the message, so the same attempt goes on to the next one at once: this is the
/// in-flight failover. Any other failure may have reached the provider and stops the attempt.
pub async fn deliver_one(
    msg: Claimed,
    dispatch: &Dispatch,
    policy: &DeliveryPolicy,
    clock: &SharedClock,
) -> Completion {
    if let Some(c) = hold_if_paused(&msg, dispatch, clock) {
        return c;
    }
    let route = dispatch.routes.resolve(&msg.tenant_id);
    let candidates: Vec<&Arc<dyn Provider>> = route
        .iter()
        .filter(|n| !dispatch.pauses.provider_paused(n))
        .filter_map(|n| dispatch.providers.get(n))
        .filter(|p| p.channel() == Channel::Email)
        .collect();
    let mut at = Attempt {
        msg: &msg,
        recipients: msg.recipients.clone(),
        events: Vec::new(),
        last_error: None,
        provider: None,
        reached: false,
        suppress: Vec::new(),
    };
    let out = OutboundMessage {
        id: msg.id.clone(),
        tenant_id: msg.tenant_id.clone(),
        channel: Channel::Email,
        mail_from: match &policy.bounce_domain {
            Some(d) => format!("bounce+{}@{d}", msg.id),
            None => msg.mail_from.clone(),
        },
        recipients: at.pending(),
        raw: Arc::from(msg.raw.as_slice()),
        message_id_header: msg.message_id_header.clone(),
    };
    if candidates.is_empty() {
        at.last_error = Some(format!(
            "no email provider of route {route:?} is configured"
        ));
    }
    if msg.in_doubt && landed_before(&mut at, &candidates, &out, clock).await {
        return at.finish(dispatch, policy, &route, clock.now_ms());
    }
    for p in candidates {
        let name = p.name();
        if !dispatch.health.admit(name, clock.now_ms()) {
            continue;
        }
        let _limit = dispatch.limits.acquire(name).await;
        // A pause may have come while this call waited for its limit: nothing new starts.
        if let Some(c) = hold_if_paused(&msg, dispatch, clock) {
            return c;
        }
        at.provider = Some(name.to_owned());
        at.event(
            clock.now_ms(),
            EventKind::Attempted,
            None,
            format!("attempt {}", msg.attempts),
        );
        let result = p.send(&out).await;
        let now = clock.now_ms();
        match result {
            Ok(delivery) => {
                dispatch.health.record(name, now, Signal::Answered, "");
                at.reached = true;
                at.apply(now, delivery);
            }
            Err(e) => match e.class {
                FailureClass::Permanent => {
                    dispatch.health.record(name, now, Signal::Answered, "");
                    at.reached = true;
                    at.bounce_pending(now, &e.message);
                    at.last_error = Some(e.message);
                }
                FailureClass::Transient => {
                    dispatch
                        .health
                        .record(name, now, Signal::Transient, &e.message);
                    at.reached = true;
                    at.last_error = Some(e.message);
                }
                FailureClass::ProviderWide(kind) => {
                    dispatch
                        .health
                        .record(name, now, Signal::Wide(kind), &e.message);
                    at.event(
                        now,
                        EventKind::Failover,
                        None,
                        format!("{name} refused as a whole; trying the next provider: {e}"),
                    );
                    at.last_error = Some(e.message);
                    continue;
                }
            },
        }
        break;
    }
    if let Some(g) = &dispatch.guard {
        let count = |k: EventKind| at.events.iter().filter(|e| e.kind == k).count() as u64;
        let (taken, refused) = (count(EventKind::Delivered), count(EventKind::Bounced));
        match &at.provider {
            Some(p) => g.delivered(&msg.tenant_id, msg.key_id.as_deref(), p, taken, refused),
            None => g.bounced(&msg.tenant_id, refused),
        }
    }
    at.finish(dispatch, policy, &route, clock.now_ms())
}

/// When a pause covers the message, the attempt ends before any call: the message is held,
/// back at its place in line for when the pause is lifted.
fn hold_if_paused(msg: &Claimed, dispatch: &Dispatch, clock: &SharedClock) -> Option<Completion> {
    let p = dispatch
        .pauses
        .holding(&msg.tenant_id, msg.key_id.as_deref(), Channel::Email)?;
    let now = clock.now_ms();
    Some(Completion {
        id: msg.id.clone(),
        created_at: msg.created_at,
        status: MessageStatus::Held,
        held_by: Some(p.scope.tag()),
        recipients: msg.recipients.clone(),
        next_attempt_at: msg.created_at,
        provider: None,
        last_error: None,
        at: now,
        events: vec![event(
            &msg.id,
            now,
            EventKind::Held,
            None,
            None,
            crate::queue::accept::held_because(&p),
        )],
        suppress: Vec::new(),
    })
}

/// After a crash, asks each provider that can tell whether the earlier attempt landed there.
async fn landed_before(
    at: &mut Attempt<'_>,
    candidates: &[&Arc<dyn Provider>],
    out: &OutboundMessage,
    clock: &SharedClock,
) -> bool {
    for p in candidates {
        if p.was_delivered(out).await == Some(true) {
            at.provider = Some(p.name().to_owned());
            let delivery = Delivery {
                recipients: out
                    .recipients
                    .iter()
                    .map(|r| {
                        let response = "found delivered by the attempt before a restart".into();
                        (r.clone(), RecipientOutcome::Delivered { response })
                    })
                    .collect(),
            };
            at.apply(clock.now_ms(), delivery);
            return true;
        }
    }
    false
}

/// Whether a refusal says the address (or its domain) does not exist, so that sending to it
/// again is pointless: RFC 3463 status 5.1.1 (bad mailbox), 5.1.2 (bad domain), 5.1.3 (bad
/// address syntax), 5.1.10 (null MX), or a 550 that says so in words. Returns the reason name
/// used on the suppression list.
pub fn hard_bounce(code: Option<u16>, text: &str) -> Option<&'static str> {
    let t = text.to_ascii_lowercase();
    let status = t
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .find(|w| w.starts_with("5.") && w.matches('.').count() == 2);
    match status {
        Some("5.1.1" | "5.1.3" | "5.1.10") => return Some("userunknown"),
        Some("5.1.2") => return Some("hostunknown"),
        Some(_) => return None,
        None => {}
    }
    let says_unknown = [
        "user unknown",
        "unknown user",
        "no such user",
        "mailbox unavailable",
        "does not exist",
        "mailbox not found",
        "recipient address rejected: user unknown",
    ]
    .iter()
    .any(|p| t.contains(p));
    (matches!(code, Some(550 | 551 | 553)) && says_unknown).then_some("userunknown")
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
    } else if recipients
        .iter()
        .any(|r| r.state == RecipientState::Expired)
    {
        MessageStatus::Expired
    } else {
        MessageStatus::Suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hard_bounces_are_unknown_addresses_and_domains_only() {
        assert_eq!(
            hard_bounce(
                Some(550),
                "RCPT TO: permanent error (550): 5.1.1 <a@b>: Recipient address rejected: User unknown"
            ),
            Some("userunknown")
        );
        assert_eq!(
            hard_bounce(Some(550), "5.1.2 bad destination domain"),
            Some("hostunknown")
        );
        assert_eq!(
            hard_bounce(Some(550), "550 5.1.10 null MX"),
            Some("userunknown")
        );
        assert_eq!(hard_bounce(Some(552), "5.2.2 mailbox full"), None);
        assert_eq!(
            hard_bounce(Some(554), "5.7.1 Message rejected as spam"),
            None
        );
        assert_eq!(
            hard_bounce(Some(550), "No such user here"),
            Some("userunknown")
        );
        assert_eq!(hard_bounce(Some(550), "Rejected by policy"), None);
        assert_eq!(hard_bounce(None, "invalid address \"x\""), None);
    }

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let p = DeliveryPolicy {
            backoff_base_ms: 1000,
            backoff_max_ms: 60_000,
            suppress_hard_bounces: true,
            bounce_domain: None,
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
