//! Detection: cheap counters fed from the hot paths (accepts, delivery outcomes, feedback),
//! checked against thresholds as each observation arrives, so a compromise is seen within
//! seconds. A trip is handed to a task that contains it (a pause by the guard, which holds the
//! scope's mail: never dropped) and records the alert with its evidence.
//!
//! Signals in this version:
//! - **volume** per API key: messages in the last minute against the key's own learned rate
//!   (an EWMA of its per-minute counts, used once the key has a few minutes of history) times
//!   a factor, and never below a floor;
//! - **bounce rate** and **complaint rate** per tenant over the last hour, with a minimum
//!   sample (Postern's default trigger is 2% bounces, well below the 5% at which Amazon SES
//!   reviews an account);
//! - **orphan feedback**: bounces and auto-replies about mail Postern never sent, a sign a
//!   provider credential is used outside Postern.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use crate::clock::SharedClock;
use crate::guard::{Pause, PauseScope};
use crate::store::{Alert, Store};
use crate::telemetry::Metrics;

/// `[guard]` in postern.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// A key sending more than this many messages in a minute is held, whatever its history.
    #[serde(default = "default_volume_floor")]
    pub volume_floor_per_minute: u64,
    /// ... or more than this many times its own learned per-minute rate.
    #[serde(default = "default_volume_factor")]
    pub volume_factor: f64,
    /// Minutes of history before a key's learned rate counts.
    #[serde(default = "default_warmup")]
    pub warmup_minutes: u32,
    /// Tenant bounce rate over the last hour that holds the tenant.
    #[serde(default = "default_bounce_rate")]
    pub bounce_rate: f64,
    #[serde(default = "default_bounce_sample")]
    pub bounce_min_sample: u64,
    #[serde(default = "default_complaint_rate")]
    pub complaint_rate: f64,
    #[serde(default = "default_complaint_sample")]
    pub complaint_min_sample: u64,
    /// Orphan feedback messages within 15 minutes that raise an alert.
    #[serde(default = "default_orphans")]
    pub orphan_limit: u64,
    /// Sends announced in advance (see guard/planned.rs).
    #[serde(default)]
    pub planned: Vec<crate::guard::planned::PlannedSend>,
}

fn yes() -> bool {
    true
}
fn default_volume_floor() -> u64 {
    3_000
}
fn default_volume_factor() -> f64 {
    10.0
}
fn default_warmup() -> u32 {
    10
}
fn default_bounce_rate() -> f64 {
    0.02
}
fn default_bounce_sample() -> u64 {
    200
}
fn default_complaint_rate() -> f64 {
    0.001
}
fn default_complaint_sample() -> u64 {
    1_000
}
fn default_orphans() -> u64 {
    20
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            volume_floor_per_minute: default_volume_floor(),
            volume_factor: default_volume_factor(),
            warmup_minutes: default_warmup(),
            bounce_rate: default_bounce_rate(),
            bounce_min_sample: default_bounce_sample(),
            complaint_rate: default_complaint_rate(),
            complaint_min_sample: default_complaint_sample(),
            orphan_limit: default_orphans(),
            planned: Vec::new(),
        }
    }
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
const ORPHAN_WINDOW_MS: i64 = 15 * MINUTE_MS;

/// Events in a sliding window, counted per second.
#[derive(Default)]
struct Window {
    /// (second, count), oldest first.
    slots: VecDeque<(i64, u64)>,
    total: u64,
}

impl Window {
    fn add(&mut self, now: i64, span: i64, n: u64) {
        let sec = now / 1000;
        match self.slots.back_mut() {
            Some((s, c)) if *s == sec => *c += n,
            _ => self.slots.push_back((sec, n)),
        }
        self.total += n;
        self.trim(now, span);
    }

    fn trim(&mut self, now: i64, span: i64) {
        let oldest = (now - span) / 1000;
        while let Some(&(s, c)) = self.slots.front() {
            if s > oldest {
                break;
            }
            self.slots.pop_front();
            self.total -= c;
        }
    }

    fn count(&mut self, now: i64, span: i64) -> u64 {
        self.trim(now, span);
        self.total
    }
}

#[derive(Default)]
struct KeyStats {
    last_minute: Window,
    /// Learned messages per minute.
    ewma: f64,
    minute: i64,
    minute_count: u64,
    minutes_seen: u32,
}

#[derive(Default)]
struct TenantStats {
    sent: Window,
    bounced: Window,
    complained: Window,
}

#[derive(Default)]
struct State {
    keys: HashMap<String, KeyStats>,
    tenants: HashMap<String, TenantStats>,
    orphans: Window,
    /// Scopes already acted on (until the process restarts or the pause is lifted).
    tripped: HashSet<(String, String, String)>,
}

/// What tripped, for the containment task.
#[derive(Debug, Clone)]
pub struct Trip {
    pub scope: PauseScope,
    pub signal: &'static str,
    pub evidence: serde_json::Value,
    /// Hold the scope's mail, or only record the alert.
    pub hold: bool,
}

/// The detector; cheap to clone. Observations never block and never touch the store.
#[derive(Clone)]
pub struct Guard {
    cfg: Arc<GuardConfig>,
    clock: SharedClock,
    state: Arc<Mutex<State>>,
    trips: mpsc::UnboundedSender<Trip>,
}

impl Guard {
    /// A detector and the receiving end of its trips (for [`contain`]).
    pub fn new(cfg: GuardConfig, clock: SharedClock) -> (Self, mpsc::UnboundedReceiver<Trip>) {
        let (trips, rx) = mpsc::unbounded_channel();
        let g = Self {
            cfg: Arc::new(cfg),
            clock,
            state: Arc::default(),
            trips,
        };
        (g, rx)
    }

    fn trip(&self, st: &mut State, t: Trip) {
        let id = (
            t.scope.kind().to_owned(),
            t.scope.target().to_owned(),
            t.signal.to_owned(),
        );
        if st.tripped.insert(id) {
            let _ = self.trips.send(t);
        }
    }

    /// A message accepted from `key_id` of `tenant_id` with `recipients` recipients.
    pub fn accepted(&self, tenant_id: &str, key_id: Option<&str>, recipients: usize) {
        if !self.cfg.enabled {
            return;
        }
        let now = self.clock.now_ms();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.tenants
            .entry(tenant_id.to_owned())
            .or_default()
            .sent
            .add(now, HOUR_MS, recipients as u64);
        let Some(key) = key_id else { return };
        let k = st.keys.entry(key.to_owned()).or_default();
        let minute = now / MINUTE_MS;
        if minute != k.minute {
            if k.minute != 0 {
                // Minutes with nothing sent count as zero in the learned rate.
                let idle = (minute - k.minute - 1).clamp(0, 60) as i32;
                k.ewma = k.ewma * 0.8_f64.powi(idle + 1) + 0.2 * k.minute_count as f64;
                k.minutes_seen = k.minutes_seen.saturating_add(1);
            }
            k.minute = minute;
            k.minute_count = 0;
        }
        k.minute_count += 1;
        k.last_minute.add(now, MINUTE_MS, 1);
        let in_minute = k.last_minute.count(now, MINUTE_MS);
        let learned = (k.minutes_seen >= self.cfg.warmup_minutes).then_some(k.ewma);
        let limit = learned
            .map_or(0.0, |r| r * self.cfg.volume_factor)
            .max(self.cfg.volume_floor_per_minute as f64)
            .max(crate::guard::planned::ceiling(&self.cfg.planned, key, now).unwrap_or(0) as f64);
        if in_minute as f64 > limit {
            let evidence = json!({
                "messages_last_minute": in_minute,
                "limit": limit.round(),
                "learned_per_minute": learned.map(|r| (r * 10.0).round() / 10.0),
                "floor": self.cfg.volume_floor_per_minute,
                "factor": self.cfg.volume_factor,
            });
            self.trip(
                &mut st,
                Trip {
                    scope: PauseScope::Key(key.to_owned()),
                    signal: "volume",
                    evidence,
                    hold: true,
                },
            );
        }
    }

    /// Delivery outcomes a provider gave synchronously (refused recipients are bounces).
    pub fn bounced(&self, tenant_id: &str, n: u64) {
        if n > 0 && self.cfg.enabled {
            self.feedback(tenant_id, "bounce", n);
        }
    }

    /// Feedback that came back: `kind` is `bounce`, `complaint`, `autoreply` or `delivery`;
    /// `tenant_id` is `None` for an orphan.
    pub fn feedback_received(&self, tenant_id: Option<&str>, kind: &str) {
        if !self.cfg.enabled {
            return;
        }
        match tenant_id {
            Some(t) => self.feedback(t, kind, 1),
            None if kind == "delivery" => {}
            None => {
                let now = self.clock.now_ms();
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                st.orphans.add(now, ORPHAN_WINDOW_MS, 1);
                let n = st.orphans.count(now, ORPHAN_WINDOW_MS);
                if n >= self.cfg.orphan_limit {
                    let evidence = json!({
                        "orphan_feedback_15_min": n,
                        "limit": self.cfg.orphan_limit,
                        "meaning": "bounces or auto-replies about mail Postern never sent: a provider credential may be in use elsewhere",
                    });
                    self.trip(
                        &mut st,
                        Trip {
                            scope: PauseScope::All,
                            signal: "orphan_feedback",
                            evidence,
                            hold: false,
                        },
                    );
                }
            }
        }
    }

    fn feedback(&self, tenant_id: &str, kind: &str, n: u64) {
        let now = self.clock.now_ms();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let t = st.tenants.entry(tenant_id.to_owned()).or_default();
        let (window, rate, sample, signal) = match kind {
            "bounce" => (
                &mut t.bounced,
                self.cfg.bounce_rate,
                self.cfg.bounce_min_sample,
                "bounce_rate",
            ),
            "complaint" => (
                &mut t.complained,
                self.cfg.complaint_rate,
                self.cfg.complaint_min_sample,
                "complaint_rate",
            ),
            _ => return,
        };
        window.add(now, HOUR_MS, n);
        let bad = window.count(now, HOUR_MS);
        let sent = t.sent.count(now, HOUR_MS);
        if sent >= sample && bad as f64 > rate * sent as f64 {
            let evidence = json!({
                "kind": kind,
                "last_hour": bad,
                "sent_last_hour": sent,
                "rate": (bad as f64 / sent as f64 * 10_000.0).round() / 10_000.0,
                "threshold": rate,
                "min_sample": sample,
            });
            self.trip(
                &mut st,
                Trip {
                    scope: PauseScope::Tenant(tenant_id.to_owned()),
                    signal,
                    evidence,
                    hold: true,
                },
            );
        }
    }

    /// Forget a containment once an operator lifts it, so the scope can trip again.
    pub fn reset(&self, scope: &PauseScope) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.tripped
            .retain(|(k, t, _)| !(k == scope.kind() && t == scope.target()));
        if let PauseScope::Tenant(t) = scope {
            st.tenants.remove(t);
        }
        if let PauseScope::Key(k) = scope {
            st.keys.remove(k);
        }
    }
}

/// Contains each trip: a pause by the guard (which holds the scope's mail) and an alert with
/// the evidence. Runs until the detector is dropped.
pub async fn contain(
    mut trips: mpsc::UnboundedReceiver<Trip>,
    store: Store,
    pauses: crate::guard::Pauses,
    clock: SharedClock,
    metrics: Metrics,
) {
    while let Some(t) = trips.recv().await {
        let now = clock.now_ms();
        let action = if t.hold { "hold" } else { "alert" };
        tracing::error!(scope = t.scope.kind(), target = t.scope.target(), signal = t.signal, evidence = %t.evidence, action, "guard tripped");
        metrics.guard_action(t.signal, action);
        if t.hold {
            let p = Pause {
                scope: t.scope.clone(),
                reason: format!("guard: {} ({})", t.signal, t.evidence),
                actor: "guard".into(),
                created_at: now,
            };
            // In memory at once (this node stops sending now), then persisted for the others.
            pauses.add_local(p.clone());
            if let Err(e) = store.pause(&p).await {
                tracing::error!(error = %e, "persisting the guard's pause failed; it holds on this node only");
            }
        }
        let target = format!("{}:{}", t.scope.kind(), t.scope.target());
        let ev = crate::audit::AuditEvent {
            actor: "guard",
            source_ip: None,
            action: if t.hold { "guard.hold" } else { "guard.alert" },
            target: target.trim_end_matches(':'),
            reason: Some(t.signal),
            detail: t.evidence.clone(),
        };
        if let Err(e) = crate::audit::record(&store, now, ev).await {
            tracing::error!(error = %e, "recording the guard's action in the audit log failed");
        }
        let alert = Alert {
            id: uuid::Uuid::now_v7().to_string(),
            at: now,
            scope: t.scope.kind().into(),
            target: t.scope.target().into(),
            signal: t.signal.into(),
            evidence: t.evidence,
            action: action.into(),
        };
        if let Err(e) = store.record_alert(&alert).await {
            tracing::error!(error = %e, "recording a guard alert failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn guard(cfg: GuardConfig) -> (Guard, mpsc::UnboundedReceiver<Trip>, Arc<ManualClock>) {
        let clock = ManualClock::new(1_000_000);
        let (g, rx) = Guard::new(cfg, clock.clone());
        (g, rx, clock)
    }

    #[test]
    fn a_key_over_the_floor_trips_once() {
        let (g, mut rx, _) = guard(GuardConfig {
            volume_floor_per_minute: 50,
            ..Default::default()
        });
        for _ in 0..50 {
            g.accepted("t", Some("k"), 1);
        }
        assert!(rx.try_recv().is_err());
        g.accepted("t", Some("k"), 1);
        g.accepted("t", Some("k"), 1);
        let t = rx.try_recv().unwrap();
        assert_eq!(
            (t.scope, t.signal, t.hold),
            (PauseScope::Key("k".into()), "volume", true)
        );
        assert_eq!(t.evidence["messages_last_minute"], 51);
        assert!(rx.try_recv().is_err(), "tripped twice");
        // Another key is untouched.
        g.accepted("t", Some("k2"), 1);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn a_key_is_judged_against_its_own_learned_rate_after_warm_up() {
        let cfg = GuardConfig {
            volume_floor_per_minute: 20,
            volume_factor: 3.0,
            warmup_minutes: 5,
            ..Default::default()
        };
        let (g, mut rx, clock) = guard(cfg);
        // Ten minutes at 10 a minute: learned ~10/min; the limit is max(20, 30).
        for _ in 0..10 {
            for _ in 0..10 {
                g.accepted("t", Some("k"), 1);
            }
            clock.advance_ms(MINUTE_MS);
        }
        for _ in 0..25 {
            g.accepted("t", Some("k"), 1);
        }
        assert!(rx.try_recv().is_err(), "25 is under 3x the learned rate");
        for _ in 0..10 {
            g.accepted("t", Some("k"), 1);
        }
        let t = rx.try_recv().unwrap();
        assert_eq!(t.signal, "volume");
        assert!(
            t.evidence["learned_per_minute"].as_f64().unwrap() > 8.0,
            "{}",
            t.evidence
        );
    }

    #[test]
    fn bounce_rate_needs_a_sample_and_then_holds_the_tenant() {
        let cfg = GuardConfig {
            bounce_min_sample: 100,
            ..Default::default()
        };
        let (g, mut rx, _) = guard(cfg);
        for _ in 0..50 {
            g.accepted("t", Some("k"), 1);
        }
        g.bounced("t", 10);
        assert!(rx.try_recv().is_err(), "below the minimum sample");
        for _ in 0..150 {
            g.accepted("t", Some("k"), 1);
        }
        g.bounced("t", 1);
        let t = rx.try_recv().unwrap();
        assert_eq!(
            (t.scope, t.signal),
            (PauseScope::Tenant("t".into()), "bounce_rate")
        );
        assert_eq!(t.evidence["last_hour"], 11);
        // A clean tenant with the same volume is not touched.
        for _ in 0..200 {
            g.accepted("u", None, 1);
        }
        g.bounced("u", 3);
        assert!(rx.try_recv().is_err());
    }

    #[test]
    fn orphan_feedback_alerts_without_holding() {
        let (g, mut rx, clock) = guard(GuardConfig {
            orphan_limit: 3,
            ..Default::default()
        });
        g.feedback_received(None, "autoreply");
        g.feedback_received(None, "bounce");
        clock.advance_ms(ORPHAN_WINDOW_MS + 1);
        g.feedback_received(None, "bounce");
        g.feedback_received(None, "delivery");
        assert!(rx.try_recv().is_err(), "the first two aged out");
        g.feedback_received(None, "bounce");
        g.feedback_received(None, "autoreply");
        let t = rx.try_recv().unwrap();
        assert_eq!((t.signal, t.hold), ("orphan_feedback", false));
    }
}
