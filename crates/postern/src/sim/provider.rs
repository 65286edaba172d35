//! A simulated provider: a real [`Provider`] whose recipients behave as their pool declares.
//! It keeps the counters a provider keeps (sends, bounces, complaints over its window), suspends
//! the account as SES does when a rate goes over its limit, can have an outage, and queues the
//! feedback its recipients produce for the simulator to deliver after a delay.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::clock::SharedClock;
use crate::providers::{
    AccountStatus, Delivery, FailureClass, OutboundMessage, Provider, ProviderError,
    ProviderWideKind, RecipientOutcome,
};

use super::scenario::ProviderSpec;

/// What a recipient does with mail, decided once per address.
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    pub bounce: f64,
    pub complaint: f64,
    pub autoreply: f64,
}

/// Recipient behaviour by pool (the part of the domain after the first label), and a seed so
/// an address's fate is the same for the whole run.
#[derive(Debug, Clone, Default)]
pub struct Recipients {
    pub pools: BTreeMap<String, Behaviour>,
    pub seed: u64,
}

/// What comes back from a recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Bounce,
    Complaint,
    AutoReply,
    Quiet,
}

impl Recipients {
    pub fn fate(&self, address: &str) -> Fate {
        let pool = address
            .split_once('@')
            .and_then(|(_, d)| d.split_once('.'))
            .and_then(|(_, rest)| rest.split_once('.'))
            .map_or("", |(p, _)| p);
        let Some(b) = self.pools.get(pool) else {
            return Fate::Quiet;
        };
        let u = unit(mix(self.seed ^ fnv(address)));
        if u < b.bounce {
            Fate::Bounce
        } else if u < b.bounce + b.complaint {
            Fate::Complaint
        } else if u < b.bounce + b.complaint + b.autoreply {
            Fate::AutoReply
        } else {
            Fate::Quiet
        }
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// splitmix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn unit(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// Feedback on its way back: due at `at`, about a message of `tenant` (`None`: mail Postern
/// never sent).
#[derive(Debug, Clone)]
pub struct Feedback {
    pub at: i64,
    pub tenant: Option<String>,
    /// The Message-ID of the mail it is about (as a DSN or ARF report quotes it); `None` for
    /// mail sent outside Postern.
    pub message: Option<String>,
    pub kind: &'static str,
}

/// Counts per second over a window.
#[derive(Debug, Default)]
struct Counter {
    slots: VecDeque<(i64, u64)>,
    total: u64,
}

impl Counter {
    fn add(&mut self, now: i64, window: i64, n: u64) {
        let s = now / 1000;
        match self.slots.back_mut() {
            Some((t, c)) if *t == s => *c += n,
            _ => self.slots.push_back((s, n)),
        }
        self.total += n;
        while let Some(&(t, c)) = self.slots.front() {
            if t > (now - window) / 1000 {
                break;
            }
            self.slots.pop_front();
            self.total -= c;
        }
    }
}

#[derive(Debug, Default)]
pub struct ProviderState {
    sent: Counter,
    bounced: Counter,
    complained: Counter,
    /// Every recipient ever sent to (for the account's own 24 h counter).
    pub sent_total: u64,
    pub calls: u64,
    pub peak_bounce_rate: f64,
    pub peak_complaint_rate: f64,
    pub suspended_at: Option<i64>,
    /// `(from, until)` in virtual ms.
    pub outages: Vec<(i64, i64)>,
    pub feedback: Vec<Feedback>,
}

pub struct SimProvider {
    name: String,
    spec: SpecFigures,
    clock: SharedClock,
    recipients: Arc<Recipients>,
    pub state: Arc<Mutex<ProviderState>>,
}

#[derive(Debug, Clone)]
struct SpecFigures {
    suspend_bounce: Option<f64>,
    suspend_complaint: Option<f64>,
    window: i64,
    min_sample: u64,
    history: (u64, u64, u64),
    delay: i64,
    sync_bounces: bool,
}

impl SimProvider {
    pub fn new(spec: &ProviderSpec, clock: SharedClock, recipients: Arc<Recipients>) -> Self {
        Self {
            name: spec.name.get_ref().clone(),
            spec: SpecFigures {
                suspend_bounce: spec.suspend_bounce_rate,
                suspend_complaint: spec.suspend_complaint_rate,
                window: spec.window.0.max(1000),
                min_sample: spec.min_sample,
                history: (
                    spec.history_sent,
                    spec.history_bounced,
                    spec.history_complained,
                ),
                delay: spec.feedback_delay.0,
                sync_bounces: spec.sync_bounces,
            },
            clock,
            recipients,
            state: Arc::default(),
        }
    }

    fn down(&self, st: &ProviderState, now: i64) -> Option<ProviderError> {
        if st.outages.iter().any(|(a, b)| (*a..*b).contains(&now)) {
            return Some(ProviderError::new(
                FailureClass::ProviderWide(ProviderWideKind::Unavailable),
                None,
                format!("{}: connection refused (simulated outage)", self.name),
            ));
        }
        st.suspended_at.map(|_| {
            ProviderError::new(
                FailureClass::ProviderWide(ProviderWideKind::AccountSuspended),
                Some(400),
                format!(
                    "{}: sending paused for this account (simulated suspension)",
                    self.name
                ),
            )
        })
    }

    /// Records `n` sends and what their recipients do; feedback goes to `tenant`'s ledger, or
    /// comes back as orphans when `tenant` is `None` (sent outside Postern).
    fn take(
        &self,
        st: &mut ProviderState,
        now: i64,
        tenant: Option<&str>,
        message: Option<&str>,
        rcpts: &[String],
    ) -> Vec<(String, RecipientOutcome)> {
        let w = self.spec.window;
        let mut out = Vec::with_capacity(rcpts.len());
        for r in rcpts {
            st.sent.add(now, w, 1);
            st.sent_total += 1;
            let fate = self.recipients.fate(r);
            let kind = match fate {
                Fate::Bounce => {
                    st.bounced.add(now, w, 1);
                    Some("bounce")
                }
                Fate::Complaint => {
                    st.complained.add(now, w, 1);
                    Some("complaint")
                }
                Fate::AutoReply => Some("autoreply"),
                Fate::Quiet => None,
            };
            let sync = fate == Fate::Bounce && self.spec.sync_bounces && tenant.is_some();
            if let (Some(kind), false) = (kind, sync) {
                st.feedback.push(Feedback {
                    at: now + self.spec.delay,
                    tenant: tenant.map(str::to_owned),
                    message: message.map(str::to_owned),
                    kind,
                });
            }
            out.push((
                r.clone(),
                if sync {
                    RecipientOutcome::Bounced {
                        code: Some(550),
                        reason: "550 5.1.1 user unknown (simulated)".into(),
                    }
                } else {
                    RecipientOutcome::Delivered {
                        response: "250 ok (simulated)".into(),
                    }
                },
            ));
        }
        let (hs, hb, hc) = self.spec.history;
        let sent = hs + st.sent.total;
        if sent >= self.spec.min_sample {
            let b = (hb + st.bounced.total) as f64 / sent as f64;
            let c = (hc + st.complained.total) as f64 / sent as f64;
            st.peak_bounce_rate = st.peak_bounce_rate.max(b);
            st.peak_complaint_rate = st.peak_complaint_rate.max(c);
            let over = self.spec.suspend_bounce.is_some_and(|l| b > l)
                || self.spec.suspend_complaint.is_some_and(|l| c > l);
            if over && st.suspended_at.is_none() {
                st.suspended_at = Some(now);
            }
        }
        out
    }

    /// Mail sent with this provider's credential from outside Postern.
    pub fn send_outside(&self, rcpts: &[String]) {
        let now = self.clock.now_ms();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if self.down(&st, now).is_none() {
            self.take(&mut st, now, None, None, rcpts);
        }
    }

    pub fn suspend(&self) {
        let now = self.clock.now_ms();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.suspended_at.get_or_insert(now);
    }
}

#[async_trait]
impl Provider for SimProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Delivery, ProviderError> {
        let now = self.clock.now_ms();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = self.down(&st, now) {
            return Err(e);
        }
        st.calls += 1;
        let recipients = self.take(
            &mut st,
            now,
            Some(&msg.tenant_id),
            Some(&msg.message_id_header),
            &msg.recipients,
        );
        Ok(Delivery { recipients })
    }

    async fn probe(&self) -> Result<(), ProviderError> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.down(&st, self.clock.now_ms()).map_or(Ok(()), Err)
    }

    async fn account_status(&self) -> Option<Result<AccountStatus, ProviderError>> {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Some(Ok(AccountStatus {
            sending_enabled: st.suspended_at.is_none(),
            enforcement: Some(
                if st.suspended_at.is_some() {
                    "SHUTDOWN"
                } else {
                    "HEALTHY"
                }
                .into(),
            ),
            sent_last_24h: Some(st.sent_total),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_has_one_fate_at_the_declared_rate() {
        let mut r = Recipients {
            seed: 7,
            ..Default::default()
        };
        r.pools.insert(
            "bought".into(),
            Behaviour {
                bounce: 0.3,
                ..Default::default()
            },
        );
        let fates: Vec<Fate> = (0..10_000)
            .map(|i| r.fate(&format!("u{i}@d{}.bought.test", i % 7)))
            .collect();
        let bounces = fates.iter().filter(|f| **f == Fate::Bounce).count();
        assert!((2_700..3_300).contains(&bounces), "{bounces}");
        assert_eq!(r.fate("u1@d1.bought.test"), fates[1]);
        assert_eq!(r.fate("u1@d1.other.test"), Fate::Quiet);
    }
}
