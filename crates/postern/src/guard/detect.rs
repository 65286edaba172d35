//! Detection: cheap counters fed from the hot paths (key checks, accepts, delivery outcomes,
//! feedback, provider account polls), turned into findings by the signals (`guard/signals/`)
//! and scored per scope by the policy (`guard/policy.rs`) as each observation arrives, so a
//! compromise is seen within seconds. A decision is handed to a task ([`contain`]) that acts
//! on it and records the alert with its evidence; a throttle takes effect here, at once.
//!
//! The detector sees only what the pipeline sees: keys, addresses, networks, content,
//! outcomes. One lock guards all state; an observation takes it once and never awaits.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};

use serde_json::json;
use tokio::sync::mpsc;

pub use super::config::GuardConfig;
pub use super::contain::contain;
use super::policy::{Action, Judge};
use super::signals::access::{KeyAccess, network_hash};
use super::signals::content::{KeyContent, simhash};
use super::signals::feedback::{Kind, Rates};
use super::signals::novelty::{KeyNovelty, TenantMemory};
use super::signals::volume::KeyVolume;
use super::signals::{Finding, ledger};
use crate::clock::SharedClock;
use crate::guard::PauseScope;
use crate::store::NewMessage;

const MINUTE_MS: i64 = 60_000;
const ORPHAN_WINDOW_MS: i64 = 15 * MINUTE_MS;

/// Orphan feedback timestamps in a sliding window.
#[derive(Default)]
struct Orphans(VecDeque<i64>);

impl Orphans {
    fn add(&mut self, now: i64) -> u64 {
        self.0.push_back(now);
        while self.0.front().is_some_and(|t| now - t >= ORPHAN_WINDOW_MS) {
            self.0.pop_front();
        }
        self.0.len() as u64
    }
}

struct KeyState {
    volume: KeyVolume,
    novelty: KeyNovelty,
    content: KeyContent,
    access: KeyAccess,
    rates: Rates,
}

impl Default for KeyState {
    fn default() -> Self {
        Self {
            volume: KeyVolume::default(),
            novelty: KeyNovelty::default(),
            content: KeyContent::default(),
            access: KeyAccess::default(),
            rates: Rates::quarter_hourly(),
        }
    }
}

struct TenantState {
    /// Whom the tenant has mailed (256 KiB), made on its first message with recipients.
    memory: Option<Box<TenantMemory>>,
    rates: Rates,
}

impl Default for TenantState {
    fn default() -> Self {
        Self {
            memory: None,
            rates: Rates::hourly(),
        }
    }
}

#[derive(Default)]
struct State {
    keys: HashMap<String, KeyState>,
    tenants: HashMap<String, TenantState>,
    providers: HashMap<String, Rates>,
    orphans: Orphans,
    judge: Judge,
}

/// A message as the detector sees it.
#[derive(Debug, Clone)]
pub struct Seen {
    tenant_id: String,
    key_id: Option<String>,
    recipients: Vec<String>,
    hash: Option<u64>,
}

/// A decision for the containment task.
#[derive(Debug, Clone)]
pub struct Trip {
    pub scope: PauseScope,
    /// The signal whose finding reached the action.
    pub signal: &'static str,
    /// The score, the trigger and every finding behind it (signal, value, threshold, window).
    pub evidence: serde_json::Value,
    /// Hold the scope's mail (a hold, a revocation or a provider out of rotation), or not.
    pub hold: bool,
    pub action: Action,
}

/// The detector; cheap to clone. Observations never block and never touch the store.
#[derive(Clone)]
pub struct Guard {
    cfg: Arc<GuardConfig>,
    clock: SharedClock,
    state: Arc<Mutex<State>>,
    /// Rate caps the policy put on keys, read by the admit path (`auth.rs`). A cap lasts
    /// `memory_secs`, as long as the findings behind it count.
    throttles: Arc<RwLock<HashMap<String, Throttle>>>,
    trips: mpsc::UnboundedSender<Trip>,
}

/// A cap on a key's rate, except from the networks it was used from before the suspicion
/// began: a stolen key used from a new network is slowed down, its owner is not.
#[derive(Debug)]
struct Throttle {
    rate: f64,
    until: i64,
    spared: std::collections::HashSet<u64>,
}

impl Guard {
    /// A detector and the receiving end of its trips (for [`contain`]).
    pub fn new(cfg: GuardConfig, clock: SharedClock) -> (Self, mpsc::UnboundedReceiver<Trip>) {
        let (trips, rx) = mpsc::unbounded_channel();
        let g = Self {
            cfg: Arc::new(cfg),
            clock,
            state: Arc::default(),
            throttles: Arc::default(),
            trips,
        };
        (g, rx)
    }

    pub fn config(&self) -> &GuardConfig {
        &self.cfg
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Scores a finding; acts when the policy says so.
    fn judge(&self, st: &mut State, f: Finding, now: i64) {
        let learned = match &f.scope {
            PauseScope::Key(k) => st.keys.get(k).and_then(|k| {
                k.volume
                    .learned_per_minute(now, self.cfg.warmup_minutes)
                    .map(|m| m / 60.0)
            }),
            _ => None,
        };
        let Some(d) = st.judge.add(&self.cfg.policy, &f, now, learned) else {
            tracing::debug!(
                signal = f.signal,
                scope = f.scope.kind(),
                target = f.scope.target(),
                "guard finding below the policy's thresholds"
            );
            return;
        };
        if let (Action::Throttle(rate), PauseScope::Key(k)) = (d.action, &f.scope) {
            let spared = st
                .keys
                .get(k)
                .map(|k| k.access.networks_before(d.since))
                .unwrap_or_default();
            self.throttles
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(
                    k.clone(),
                    Throttle {
                        rate,
                        until: now + self.cfg.policy.memory_secs as i64 * 1000,
                        spared,
                    },
                );
        }
        let mut evidence = d.evidence;
        if let Action::Throttle(rate) = d.action {
            evidence["rate_per_sec"] = json!(rate);
        }
        let _ = self.trips.send(Trip {
            scope: f.scope,
            signal: f.signal,
            evidence,
            hold: matches!(
                d.action,
                Action::Hold | Action::Revoke | Action::ProviderOut
            ),
            action: d.action,
        });
    }

    fn judge_all(&self, st: &mut State, findings: Vec<Finding>, now: i64) {
        for f in findings {
            self.judge(st, f, now);
        }
    }

    /// The rate cap the guard put on a key used from `ip`, if any (messages per second).
    /// Networks the key was used from before the suspicion began are not capped.
    pub fn throttle_of(&self, key_id: &str, ip: Option<IpAddr>) -> Option<f64> {
        let t = self.throttles.read().unwrap_or_else(|p| p.into_inner());
        if t.is_empty() {
            return None;
        }
        let th = t.get(key_id)?;
        if self.clock.now_ms() >= th.until {
            return None;
        }
        let spared = ip.is_some_and(|ip| th.spared.contains(&network_hash(ip)));
        (!spared).then_some(th.rate)
    }

    /// A message accepted from `key_id` of `tenant_id` with `recipients` recipients, when only
    /// the counts are known: volume and the rates' denominators.
    pub fn accepted(&self, tenant_id: &str, key_id: Option<&str>, recipients: usize) {
        if !self.cfg.enabled {
            return;
        }
        let now = self.clock.now_ms();
        let mut st = self.lock();
        let n = recipients as u64;
        st.tenants
            .entry(tenant_id.to_owned())
            .or_default()
            .rates
            .sent(now, n);
        let Some(key) = key_id else { return };
        let k = st.keys.entry(key.to_owned()).or_default();
        k.rates.sent(now, n);
        if let Some(f) = k.volume.observe(key, now, &self.cfg) {
            self.judge(&mut st, f, now);
        }
    }

    /// A message as the acceptor stored it: every per-message signal (volume, recipient
    /// novelty and spread, content uniformity) and the rates' denominators.
    pub fn accepted_message(&self, m: &NewMessage) {
        self.observe(self.prepare(m));
    }

    /// What [`Guard::observe`] needs of a message, taken before it is handed to the store
    /// (hashing the content needs no lock).
    pub fn prepare(&self, m: &NewMessage) -> Seen {
        Seen {
            tenant_id: m.tenant_id.clone(),
            key_id: m.key_id.clone(),
            recipients: m.recipients.clone(),
            hash: (self.cfg.enabled && m.key_id.is_some())
                .then(|| simhash(m.subject.as_deref(), &m.raw)),
        }
    }

    /// Observes a message prepared with [`Guard::prepare`], once it is stored.
    pub fn observe(&self, m: Seen) {
        if !self.cfg.enabled {
            return;
        }
        let now = self.clock.now_ms();
        let mut guard = self.lock();
        let st = &mut *guard;
        let n = m.recipients.len() as u64;
        let tenant = st.tenants.entry(m.tenant_id.clone()).or_default();
        tenant.rates.sent(now, n);
        let memory = tenant.memory.get_or_insert_with(Box::default);
        let (Some(key), Some(hash)) = (m.key_id.as_deref(), m.hash) else {
            for r in &m.recipients {
                memory.remember(r);
            }
            return;
        };
        let k = st.keys.entry(key.to_owned()).or_default();
        k.rates.sent(now, n);
        let mut findings = Vec::new();
        findings.extend(k.volume.observe(key, now, &self.cfg));
        findings.extend(k.novelty.observe(key, memory, &m.recipients, &self.cfg));
        let spread = k.novelty.distinct_domains();
        findings.extend(k.content.observe(key, now, hash, spread, &self.cfg));
        if !findings.is_empty() {
            self.judge_all(st, findings, now);
        }
    }

    /// A key passed its check, from `ip` with HTTP `user_agent` (when known).
    pub fn key_used(&self, key_id: &str, ip: Option<IpAddr>, user_agent: Option<&str>) {
        if !self.cfg.enabled {
            return;
        }
        let now = self.clock.now_ms();
        let mut st = self.lock();
        let k = st.keys.entry(key_id.to_owned()).or_default();
        let findings = k.access.used(key_id, now, ip, user_agent, &self.cfg);
        if !findings.is_empty() {
            self.judge_all(&mut st, findings, now);
        }
    }

    /// A known key was refused something beyond what it may do (scope, network, domains).
    pub fn key_refused(&self, key_id: &str, why: &str) {
        if !self.cfg.enabled {
            return;
        }
        let now = self.clock.now_ms();
        let mut st = self.lock();
        let k = st.keys.entry(key_id.to_owned()).or_default();
        if let Some(f) = k.access.refused(key_id, now, why) {
            self.judge(&mut st, f, now);
        }
    }

    /// Delivery outcomes a provider gave synchronously (refused recipients are bounces).
    pub fn bounced(&self, tenant_id: &str, n: u64) {
        if n > 0 && self.cfg.enabled {
            self.feedback_about(Some(tenant_id), None, None, "bounce", n);
        }
    }

    /// One attempt's outcome through `provider`: recipients the provider took and refused.
    pub fn delivered(
        &self,
        tenant_id: &str,
        key_id: Option<&str>,
        provider: &str,
        taken: u64,
        refused: u64,
    ) {
        if !self.cfg.enabled || taken + refused == 0 {
            return;
        }
        let now = self.clock.now_ms();
        {
            let mut st = self.lock();
            if !st.providers.contains_key(provider) {
                st.providers
                    .insert(provider.to_owned(), Rates::quarter_hourly());
            }
            if let Some(p) = st.providers.get_mut(provider) {
                p.sent(now, taken + refused);
            }
        }
        if refused > 0 {
            self.feedback_about(Some(tenant_id), key_id, Some(provider), "bounce", refused);
        }
    }

    /// Feedback that came back: `kind` is `bounce`, `complaint`, `autoreply` or `delivery`;
    /// `tenant_id` is `None` for an orphan.
    pub fn feedback_received(&self, tenant_id: Option<&str>, kind: &str) {
        self.feedback_about(tenant_id, None, None, kind, 1);
    }

    /// `n` pieces of feedback of `kind` about mail of a tenant (and, when known, the key it
    /// came from and the provider that carried it). No tenant: an orphan.
    pub fn feedback_about(
        &self,
        tenant_id: Option<&str>,
        key_id: Option<&str>,
        provider: Option<&str>,
        kind: &str,
        n: u64,
    ) {
        if !self.cfg.enabled || n == 0 {
            return;
        }
        let now = self.clock.now_ms();
        let mut st = self.lock();
        let Some(tenant_id) = tenant_id else {
            if kind == "delivery" {
                return;
            }
            let count = st.orphans.add(now);
            if count >= self.cfg.orphan_limit {
                let f = Finding {
                    scope: PauseScope::All,
                    signal: "orphan_feedback",
                    value: count as f64,
                    threshold: self.cfg.orphan_limit as f64,
                    window_secs: (ORPHAN_WINDOW_MS / 1000) as u64,
                    detail: json!({
                        "kind": kind,
                        "meaning": "bounces or auto-replies about mail Postern never sent: a provider credential may be in use elsewhere",
                    }),
                };
                self.judge(&mut st, f, now);
            }
            return;
        };
        let Some(kind) = Kind::parse(kind) else {
            return;
        };
        let cfg = &self.cfg;
        let mut findings = Vec::new();
        let t = st.tenants.entry(tenant_id.to_owned()).or_default();
        findings.extend(
            t.rates
                .bad(PauseScope::Tenant(tenant_id.to_owned()), now, kind, n, cfg),
        );
        if let Some(key) = key_id {
            let k = st.keys.entry(key.to_owned()).or_default();
            findings.extend(
                k.rates
                    .bad(PauseScope::Key(key.to_owned()), now, kind, n, cfg),
            );
        }
        if let Some(p) = provider.and_then(|p| st.providers.get_mut(p).map(|r| (p, r))) {
            let (name, rates) = p;
            if let Some(mut f) = rates.bad(PauseScope::Provider(name.to_owned()), now, kind, n, cfg)
            {
                f.signal = match f.signal {
                    "bounce_rate" => "provider_bounce_rate",
                    "complaint_rate" => "provider_complaint_rate",
                    other => other,
                };
                findings.push(f);
            }
        }
        self.judge_all(&mut st, findings, now);
    }

    /// A provider's own count of what it sent in 24 hours against what Postern delivered
    /// through it in that time.
    pub fn provider_counter(&self, provider: &str, theirs: u64, ours: u64) {
        if !self.cfg.enabled {
            return;
        }
        if let Some(f) = ledger::check(provider, theirs, ours, &self.cfg) {
            let now = self.clock.now_ms();
            let mut st = self.lock();
            self.judge(&mut st, f, now);
        }
    }

    /// Teaches a tenant's recipient memory what the store says it mailed (at start).
    pub fn remember_recipients<'a>(
        &self,
        tenant_id: &str,
        addresses: impl Iterator<Item = &'a str>,
    ) {
        let mut st = self.lock();
        let t = st.tenants.entry(tenant_id.to_owned()).or_default();
        let m = t.memory.get_or_insert_with(Box::default);
        for a in addresses {
            m.remember(a);
        }
    }

    /// Forget a containment once an operator lifts it, so the scope can trip again; the
    /// scope's rates start afresh, what was learned about it stays.
    pub fn reset(&self, scope: &PauseScope) {
        let mut st = self.lock();
        st.judge.reset(scope);
        match scope {
            PauseScope::Tenant(t) => {
                if let Some(t) = st.tenants.get_mut(t) {
                    t.rates = Rates::hourly();
                }
            }
            PauseScope::Key(k) => {
                self.throttles
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(k);
                if let Some(k) = st.keys.get_mut(k) {
                    k.rates = Rates::quarter_hourly();
                    k.volume = KeyVolume::default();
                }
            }
            PauseScope::Provider(p) => {
                st.providers.remove(p);
            }
            PauseScope::All | PauseScope::Channel(_) => {}
        }
    }
}

/// Teaches the detector's recipient memory what the store holds (the last 90 days, newest
/// 200,000 messages), so a restart does not make every recipient look new.
pub async fn rebuild_memory(g: &Guard, store: &crate::store::Store, now: i64) {
    const DAYS_90_MS: i64 = 90 * 86_400_000;
    match store.recent_recipients(now - DAYS_90_MS, 200_000).await {
        Ok(rows) => {
            for (tenant, list) in &rows {
                g.remember_recipients(tenant, list.iter().map(String::as_str));
            }
            tracing::debug!(messages = rows.len(), "guard: recipient memory rebuilt");
        }
        Err(e) => {
            tracing::warn!(error = %e, "guard: rebuilding the recipient memory failed; every recipient looks new until learned")
        }
    }
}

/// Compares a provider's count of the last 24 hours with the ledger in the store.
pub async fn check_ledger(
    g: &Guard,
    store: &crate::store::Store,
    provider: &str,
    theirs: u64,
    now: i64,
) {
    const DAY_MS: i64 = 86_400_000;
    match store.delivered_via(provider, now - DAY_MS).await {
        Ok(ours) => g.provider_counter(provider, theirs, ours),
        Err(e) => tracing::warn!(error = %e, provider, "guard: reading the delivery ledger failed"),
    }
}
