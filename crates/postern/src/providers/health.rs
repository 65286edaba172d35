//! Provider health: one circuit breaker per provider, fed by the outcome of every call, by
//! probes and by the account status the provider reports. Workers ask it before each call
//! ([`Health::admit`]) and tell it the result ([`Health::record`]); a change of state is
//! published on a channel so the server can log it, update metrics and pull deferred messages
//! forward to the next provider.
//!
//! States: *healthy* (closed), *degraded* (closed, but failures or throttling seen, or
//! half-open after an outage and taking a growing share of traffic), *down* (open: nothing is
//! sent until a cooldown passes), *suspended* (the provider itself stopped the account:
//! nothing is sent until its account status or a probe says sending works again).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use super::{AccountStatus, ProviderWideKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Healthy,
    Degraded,
    Down,
    Suspended,
}

impl HealthState {
    pub const ALL: [HealthState; 4] = [Self::Healthy, Self::Degraded, Self::Down, Self::Suspended];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Down => "down",
            Self::Suspended => "suspended",
        }
    }
}

/// What one call or probe told us about the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The provider answered (delivered, or refused a recipient or the content on its merits).
    Answered,
    /// The call failed in a way that may be about this message only (timeout, 5xx).
    Transient,
    /// The provider as a whole refused.
    Wide(ProviderWideKind),
}

/// A change of state, published to subscribers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub provider: String,
    pub from: HealthState,
    pub to: HealthState,
    pub at: i64,
    pub reason: String,
}

/// How one provider is doing, for `providers list`, metrics and the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthView {
    pub provider: String,
    pub state: HealthState,
    /// Share of traffic admitted, in percent (below 100 while recovering).
    pub share: u32,
    pub since: i64,
    pub reason: String,
}

/// Outcomes older than this no longer count.
const WINDOW_MS: i64 = 30_000;
/// Provider-wide failures within this span that open the breaker.
const WIDE_SPAN_MS: i64 = 10_000;
const WIDE_TO_OPEN: usize = 3;
/// Failures in a row (of any kind) that open the breaker.
const FAILURES_IN_A_ROW_TO_OPEN: usize = 5;
/// Failure share of the window above which a working provider counts as degraded.
const DEGRADED_FAILURE_PERCENT: usize = 25;
const COOLDOWN_BASE_MS: i64 = 2_000;
const COOLDOWN_MAX_MS: i64 = 60_000;
/// Half-open: the share admitted grows through these steps, one step per run of successes.
const RECOVERY_SHARES: [u32; 4] = [10, 25, 50, 100];
const SUCCESSES_PER_STEP: u32 = 5;

#[derive(Debug, Clone)]
struct Breaker {
    state: HealthState,
    share: u32,
    successes_at_share: u32,
    admitted: u64,
    /// Times opened since the last full recovery; the cooldown doubles with each.
    opened: u32,
    retry_at: i64,
    recent: VecDeque<(i64, Signal)>,
    since: i64,
    reason: String,
}

impl Breaker {
    fn new(now: i64) -> Self {
        Self {
            state: HealthState::Healthy,
            share: 100,
            successes_at_share: 0,
            admitted: 0,
            opened: 0,
            retry_at: 0,
            recent: VecDeque::new(),
            since: now,
            reason: String::new(),
        }
    }

    fn set(&mut self, to: HealthState, now: i64, reason: String) -> Option<(HealthState, String)> {
        let from = self.state;
        self.reason = reason;
        if from == to {
            return None;
        }
        self.state = to;
        self.since = now;
        Some((from, self.reason.clone()))
    }

    fn open(&mut self, to: HealthState, now: i64, reason: String) -> Option<(HealthState, String)> {
        self.opened = self.opened.saturating_add(1);
        let cooldown = COOLDOWN_BASE_MS
            .saturating_mul(1 << self.opened.clamp(1, 10).saturating_sub(1))
            .min(COOLDOWN_MAX_MS);
        self.retry_at = if to == HealthState::Suspended {
            i64::MAX
        } else {
            now.saturating_add(cooldown)
        };
        self.share = 0;
        self.successes_at_share = 0;
        self.set(to, now, reason)
    }

    fn half_open(&mut self, now: i64, reason: String) -> Option<(HealthState, String)> {
        self.share = RECOVERY_SHARES[0];
        self.successes_at_share = 0;
        self.admitted = 0;
        self.recent.clear();
        self.set(HealthState::Degraded, now, reason)
    }

    fn recovering(&self) -> bool {
        self.share < 100
    }

    fn admit(&mut self, now: i64) -> (bool, Option<(HealthState, String)>) {
        let mut change = None;
        if self.state == HealthState::Down && now >= self.retry_at {
            change = self.half_open(now, "cooldown over; sending a share of traffic".into());
        }
        let ok = match self.state {
            HealthState::Down | HealthState::Suspended => false,
            _ if !self.recovering() => true,
            _ => {
                self.admitted += 1;
                let every = u64::from(100 / self.share.max(1));
                self.admitted % every.max(1) == 1 % every.max(1)
            }
        };
        (ok, change)
    }

    fn record(&mut self, now: i64, signal: Signal, detail: &str) -> Option<(HealthState, String)> {
        while self
            .recent
            .front()
            .is_some_and(|(at, _)| now - at > WINDOW_MS)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= 256 {
            self.recent.pop_front();
        }
        self.recent.push_back((now, signal));
        if matches!(self.state, HealthState::Down | HealthState::Suspended) {
            // Calls admitted before the breaker opened are still finishing.
            return None;
        }
        match signal {
            Signal::Wide(ProviderWideKind::AccountSuspended) => self.open(
                HealthState::Suspended,
                now,
                format!("account suspended: {detail}"),
            ),
            Signal::Wide(ProviderWideKind::AuthFailed) => self.open(
                HealthState::Down,
                now,
                format!("credentials refused: {detail}"),
            ),
            Signal::Wide(_) if self.recovering() => self.open(
                HealthState::Down,
                now,
                format!("failed again while recovering: {detail}"),
            ),
            Signal::Wide(kind) if self.wide_failures(now) >= WIDE_TO_OPEN => {
                let what = match kind {
                    ProviderWideKind::Throttled => "throttling",
                    _ => "unavailable",
                };
                self.open(HealthState::Down, now, format!("{what}: {detail}"))
            }
            Signal::Transient | Signal::Wide(_)
                if self.failures_in_a_row() >= FAILURES_IN_A_ROW_TO_OPEN =>
            {
                self.open(
                    HealthState::Down,
                    now,
                    format!("{FAILURES_IN_A_ROW_TO_OPEN} failures in a row: {detail}"),
                )
            }
            Signal::Answered if self.recovering() => {
                self.successes_at_share += 1;
                if self.successes_at_share < SUCCESSES_PER_STEP {
                    return None;
                }
                self.successes_at_share = 0;
                self.share = RECOVERY_SHARES
                    .into_iter()
                    .find(|s| *s > self.share)
                    .unwrap_or(100);
                if self.share < 100 {
                    self.reason = format!("recovering: {}% of traffic", self.share);
                    return None;
                }
                self.opened = 0;
                self.set(HealthState::Healthy, now, "recovered".into())
            }
            _ if self.recovering() => None,
            _ => {
                let (failures, throttled) = self.window_failures(now);
                if throttled || failures * 100 >= self.recent.len() * DEGRADED_FAILURE_PERCENT {
                    let why = if throttled {
                        format!("throttled: {detail}")
                    } else {
                        format!("{failures} of the last {} calls failed", self.recent.len())
                    };
                    self.set(HealthState::Degraded, now, why)
                } else {
                    self.set(HealthState::Healthy, now, String::new())
                }
            }
        }
    }

    fn wide_failures(&self, now: i64) -> usize {
        self.recent
            .iter()
            .filter(|(at, s)| now - at <= WIDE_SPAN_MS && matches!(s, Signal::Wide(_)))
            .count()
    }

    fn failures_in_a_row(&self) -> usize {
        self.recent
            .iter()
            .rev()
            .take_while(|(_, s)| *s != Signal::Answered)
            .count()
    }

    fn window_failures(&self, now: i64) -> (usize, bool) {
        let failures = self
            .recent
            .iter()
            .filter(|(_, s)| *s != Signal::Answered)
            .count();
        let throttled = self.recent.iter().any(|(at, s)| {
            now - at <= WIDE_SPAN_MS && *s == Signal::Wide(ProviderWideKind::Throttled)
        });
        (failures, throttled)
    }
}

/// The breakers of every configured provider; cheap to clone.
#[derive(Clone)]
pub struct Health {
    breakers: Arc<Mutex<HashMap<String, Breaker>>>,
    changes: broadcast::Sender<Transition>,
}

impl Health {
    pub fn new(names: impl IntoIterator<Item = String>, now: i64) -> Self {
        let breakers = names.into_iter().map(|n| (n, Breaker::new(now))).collect();
        Self {
            breakers: Arc::new(Mutex::new(breakers)),
            changes: broadcast::channel(256).0,
        }
    }

    /// Changes of state from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Transition> {
        self.changes.subscribe()
    }

    fn with<R>(
        &self,
        name: &str,
        now: i64,
        f: impl FnOnce(&mut Breaker) -> (R, Option<(HealthState, String)>),
    ) -> R {
        let (out, change) = {
            let mut map = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
            let b = map
                .entry(name.to_owned())
                .or_insert_with(|| Breaker::new(now));
            let (out, change) = f(b);
            (out, change.map(|(from, reason)| (from, b.state, reason)))
        };
        if let Some((from, to, reason)) = change {
            let t = Transition {
                provider: name.to_owned(),
                from,
                to,
                at: now,
                reason,
            };
            tracing::warn!(provider = %t.provider, from = t.from.as_str(), to = t.to.as_str(), reason = %t.reason, "provider health changed");
            let _ = self.changes.send(t);
        }
        out
    }

    /// Whether a call to `name` may start now. A recovering provider admits a growing share.
    pub fn admit(&self, name: &str, now: i64) -> bool {
        self.with(name, now, |b| b.admit(now))
    }

    /// Feeds the result of a call.
    pub fn record(&self, name: &str, now: i64, signal: Signal, detail: &str) {
        self.with(name, now, |b| ((), b.record(now, signal, detail)))
    }

    /// Feeds what the provider says about the account: a suspension opens the breaker, and a
    /// suspended provider whose account can send again starts recovering.
    pub fn account(&self, name: &str, now: i64, status: &AccountStatus) {
        self.with(name, now, |b| {
            let change = match (status.failure(), b.state) {
                (Some(_), HealthState::Suspended) => None,
                (Some(_), _) => b.open(
                    HealthState::Suspended,
                    now,
                    format!(
                        "account status: sending {}, enforcement {}",
                        if status.sending_enabled {
                            "enabled"
                        } else {
                            "disabled"
                        },
                        status.enforcement.as_deref().unwrap_or("unknown")
                    ),
                ),
                (None, HealthState::Suspended) => {
                    b.half_open(now, "account can send again; recovering".into())
                }
                (None, _) => None,
            };
            ((), change)
        })
    }

    /// Feeds a probe. Only a suspended provider acts on it: a working probe lets it start
    /// recovering (down providers recover through their cooldown and real traffic).
    pub fn probe(&self, name: &str, now: i64, ok: bool) {
        self.with(name, now, |b| {
            let change = (ok && b.state == HealthState::Suspended)
                .then(|| b.half_open(now, "probe succeeded; recovering".into()))
                .flatten();
            ((), change)
        })
    }

    /// The earliest time one of `names` may take traffic again, if all are closed to it.
    pub fn next_open(&self, names: &[String], now: i64) -> Option<i64> {
        let map = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let mut earliest = i64::MAX;
        for n in names {
            match map.get(n) {
                Some(b) if matches!(b.state, HealthState::Down | HealthState::Suspended) => {
                    earliest = earliest.min(b.retry_at)
                }
                _ => return None,
            }
        }
        Some(earliest.max(now))
    }

    pub fn views(&self) -> Vec<HealthView> {
        let map = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<HealthView> = map
            .iter()
            .map(|(name, b)| HealthView {
                provider: name.clone(),
                state: b.state,
                share: b.share,
                since: b.since,
                reason: b.reason.clone(),
            })
            .collect();
        v.sort_by(|a, b| a.provider.cmp(&b.provider));
        v
    }

    pub fn state(&self, name: &str) -> Option<HealthState> {
        let map = self.breakers.lock().unwrap_or_else(|p| p.into_inner());
        map.get(name).map(|b| b.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNAVAILABLE: Signal = Signal::Wide(ProviderWideKind::Unavailable);

    fn health() -> Health {
        Health::new(["a".to_owned()], 0)
    }

    #[test]
    fn opens_after_three_provider_wide_failures_and_publishes_it() {
        let h = health();
        let mut rx = h.subscribe();
        h.record("a", 10, UNAVAILABLE, "421");
        h.record("a", 20, UNAVAILABLE, "421");
        assert!(h.admit("a", 25));
        h.record("a", 30, UNAVAILABLE, "421");
        assert_eq!(h.state("a"), Some(HealthState::Down));
        assert!(!h.admit("a", 40));
        let first = rx.try_recv().expect("a transition");
        assert_eq!(
            (first.from, first.to),
            (HealthState::Healthy, HealthState::Degraded)
        );
        let t = rx.try_recv().expect("a second transition");
        assert_eq!(
            (t.from, t.to, t.at),
            (HealthState::Degraded, HealthState::Down, 30)
        );
        assert!(t.reason.contains("421"), "{}", t.reason);
    }

    #[test]
    fn auth_failure_and_suspension_open_at_once() {
        let h = Health::new(["a".to_owned(), "b".to_owned()], 0);
        h.record("a", 1, Signal::Wide(ProviderWideKind::AuthFailed), "535");
        h.record(
            "b",
            1,
            Signal::Wide(ProviderWideKind::AccountSuspended),
            "x",
        );
        assert_eq!(h.state("a"), Some(HealthState::Down));
        assert_eq!(h.state("b"), Some(HealthState::Suspended));
        // Suspension does not end with time, only with the account status.
        assert!(!h.admit("b", 10_000_000));
        let ok = AccountStatus {
            sending_enabled: true,
            enforcement: Some("HEALTHY".into()),
            sent_last_24h: None,
        };
        h.account("b", 10_000_001, &ok);
        assert_eq!(h.state("b"), Some(HealthState::Degraded));
    }

    #[test]
    fn transient_failures_only_degrade_until_five_in_a_row() {
        let h = health();
        for (i, s) in [
            Signal::Answered,
            Signal::Transient,
            Signal::Answered,
            Signal::Transient,
        ]
        .into_iter()
        .enumerate()
        {
            h.record("a", i as i64, s, "timeout");
        }
        assert_eq!(h.state("a"), Some(HealthState::Degraded));
        for i in 0..5 {
            h.record("a", 10 + i, Signal::Transient, "timeout");
        }
        assert_eq!(h.state("a"), Some(HealthState::Down));
    }

    #[test]
    fn recovers_gradually_after_the_cooldown() {
        let h = health();
        for t in 0..3 {
            h.record("a", t, UNAVAILABLE, "refused");
        }
        assert!(!h.admit("a", 1_999));
        // Half-open: one call in ten.
        let admitted = (0..100).filter(|i| h.admit("a", 2_010 + i)).count();
        assert_eq!(admitted, 10);
        assert_eq!(h.state("a"), Some(HealthState::Degraded));
        let mut shares = vec![];
        for i in 0..15 {
            h.record("a", 3_000 + i, Signal::Answered, "250");
            shares.push(h.views()[0].share);
        }
        assert_eq!(shares[4], 25);
        assert_eq!(shares[9], 50);
        assert_eq!(shares[14], 100);
        assert_eq!(h.state("a"), Some(HealthState::Healthy));
    }

    #[test]
    fn a_failure_while_recovering_reopens_with_a_longer_cooldown() {
        let h = health();
        for t in 0..3 {
            h.record("a", t, UNAVAILABLE, "refused");
        }
        assert!(h.admit("a", 2_002));
        h.record("a", 2_003, UNAVAILABLE, "refused");
        assert_eq!(h.state("a"), Some(HealthState::Down));
        // Second opening: 4 s.
        assert!(!h.admit("a", 2_003 + 3_999));
        assert!(h.admit("a", 2_003 + 4_000));
        assert_eq!(h.next_open(&["a".into()], 0), None);
    }

    #[test]
    fn next_open_is_the_earliest_cooldown_end_when_all_are_closed() {
        let h = Health::new(["a".to_owned(), "b".to_owned()], 0);
        h.record("a", 0, Signal::Wide(ProviderWideKind::AuthFailed), "535");
        assert_eq!(h.next_open(&["a".into(), "b".into()], 5), None);
        h.record(
            "b",
            0,
            Signal::Wide(ProviderWideKind::AccountSuspended),
            "x",
        );
        assert_eq!(h.next_open(&["a".into(), "b".into()], 5), Some(2_000));
    }
}
