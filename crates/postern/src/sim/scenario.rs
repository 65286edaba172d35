//! The scenario file: tenants, keys, routes, simulated providers, traffic streams, events and
//! expectations. Every table denies unknown keys; an error names the line and the key.

use std::collections::BTreeSet;

use serde::Deserialize;
use toml::Spanned;

use crate::guard::GuardConfig;

pub use super::duration::Dur;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub scenario: Meta,
    #[serde(default)]
    pub guard: Option<GuardConfig>,
    #[serde(default)]
    pub queue: QueueSim,
    pub tenants: Vec<TenantSpec>,
    pub keys: Vec<KeySpec>,
    pub providers: Vec<ProviderSpec>,
    pub streams: Vec<StreamSpec>,
    #[serde(default)]
    pub events: Vec<EventSpec>,
    #[serde(default)]
    pub expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// How long the traffic runs.
    pub duration: Dur,
    /// Length of one step of virtual time.
    #[serde(default = "default_step")]
    pub step: Dur,
    /// The seed used when `--seed` is not given.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Virtual time at the start (ms since the epoch): a fixed date so runs compare.
    #[serde(default = "default_start")]
    pub start_ms: i64,
}

fn default_step() -> Dur {
    Dur(100)
}
fn default_seed() -> u64 {
    1
}
fn default_start() -> i64 {
    // 2026-01-05 09:00 UTC, a Monday morning.
    1_767_603_600_000
}

/// The delivery side: how many messages the workers hand to providers per second.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSim {
    #[serde(default = "default_deliver_rate")]
    pub deliver_per_second: f64,
    /// How long a message may wait for delivery before it expires.
    #[serde(default = "default_expiry")]
    pub expiry: Dur,
}

impl Default for QueueSim {
    fn default() -> Self {
        Self {
            deliver_per_second: default_deliver_rate(),
            expiry: default_expiry(),
        }
    }
}

fn default_deliver_rate() -> f64 {
    1_000.0
}
fn default_expiry() -> Dur {
    Dur(3 * 86_400_000)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSpec {
    pub name: Spanned<String>,
    /// Providers in order; the default route when absent.
    #[serde(default)]
    pub route: Option<Vec<Spanned<String>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    pub id: Spanned<String>,
    pub tenant: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    pub name: Spanned<String>,
    /// Suspends the account (every send refused) when its bounce rate over `window` exceeds
    /// this, as Amazon SES does (it reviews at 5% and can pause at 10%).
    #[serde(default)]
    pub suspend_bounce_rate: Option<f64>,
    #[serde(default)]
    pub suspend_complaint_rate: Option<f64>,
    /// The window the provider computes its rates over.
    #[serde(default = "default_window")]
    pub window: Dur,
    /// Sends a rate needs before it counts.
    #[serde(default = "default_min_sample")]
    pub min_sample: u64,
    /// The account's earlier history inside the window (SES judges on a representative volume,
    /// not on the last minute alone).
    #[serde(default)]
    pub history_sent: u64,
    #[serde(default)]
    pub history_bounced: u64,
    #[serde(default)]
    pub history_complained: u64,
    /// Delay between a send and the feedback (bounce, complaint, auto-reply) coming back.
    #[serde(default = "default_feedback_delay")]
    pub feedback_delay: Dur,
    /// Bounces the provider refuses synchronously instead of reporting later.
    #[serde(default)]
    pub sync_bounces: bool,
}

fn default_window() -> Dur {
    Dur(86_400_000)
}
fn default_min_sample() -> u64 {
    1_000
}
fn default_feedback_delay() -> Dur {
    Dur(2_000)
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    Legitimate,
    Attack,
}

/// A traffic stream: who sends, how fast, to whom, and what its recipients do.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamSpec {
    pub name: Spanned<String>,
    pub kind: StreamKind,
    /// The API key used; `none` for a stream that bypasses Postern (a provider credential used
    /// elsewhere): only its feedback reaches Postern, as orphans.
    pub key: Spanned<String>,
    #[serde(default)]
    pub start: Dur,
    /// Until the end of the scenario when absent.
    #[serde(default)]
    pub end: Option<Dur>,
    pub rate: Rate,
    /// Outside Postern: the provider whose account the stolen credential uses.
    #[serde(default)]
    pub provider: Option<Spanned<String>>,
    #[serde(default = "default_source_ip")]
    pub source_ip: String,
    pub recipients: Pool,
    #[serde(default)]
    pub content: Content,
    #[serde(default)]
    pub bounce_rate: f64,
    #[serde(default)]
    pub complaint_rate: f64,
    #[serde(default)]
    pub autoreply_rate: f64,
}

fn default_source_ip() -> String {
    "192.0.2.10".into()
}

/// Messages per second over the stream's life.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Constant rate, or the starting rate of a ramp.
    #[serde(default)]
    pub per_second: f64,
    /// Ramps linearly from `per_second` to this at the stream's end.
    #[serde(default)]
    pub ramp_to: Option<f64>,
    /// Bursts of `burst_rate` lasting `burst_length`, every `burst_every`.
    #[serde(default)]
    pub burst_every: Option<Dur>,
    #[serde(default)]
    pub burst_length: Option<Dur>,
    #[serde(default)]
    pub burst_rate: Option<f64>,
    /// Steps: `[[offset_seconds, per_second], ...]`; each holds until the next.
    #[serde(default)]
    pub schedule: Option<Vec<(f64, f64)>>,
}

impl Rate {
    /// Messages per second at `t` ms into the stream, which lasts `len` ms.
    pub fn at(&self, t: i64, len: i64) -> f64 {
        if let Some(steps) = &self.schedule {
            return steps
                .iter()
                .take_while(|(off, _)| *off * 1000.0 <= t as f64)
                .last()
                .map_or(0.0, |s| s.1);
        }
        let base = match self.ramp_to {
            Some(to) if len > 0 => self.per_second + (to - self.per_second) * t as f64 / len as f64,
            _ => self.per_second,
        };
        match (self.burst_every, self.burst_length, self.burst_rate) {
            (Some(every), Some(length), Some(rate)) if every.0 > 0 && t % every.0 < length.0 => {
                rate
            }
            _ => base,
        }
    }
}

/// Recipients: `size` addresses spread over `domains` domains named after the pool.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pool {
    pub pool: String,
    pub size: u64,
    #[serde(default = "default_domains")]
    pub domains: u64,
    #[serde(default = "one")]
    pub per_message: u64,
}

fn default_domains() -> u64 {
    20
}
fn one() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Content {
    /// `{n}` is the message's number in the stream, `{rcpt}` its first recipient.
    #[serde(default = "default_subject")]
    pub subject: String,
    #[serde(default = "default_body")]
    pub body: String,
    #[serde(default = "default_from")]
    pub from: String,
}

impl Default for Content {
    fn default() -> Self {
        Self {
            subject: default_subject(),
            body: default_body(),
            from: default_from(),
        }
    }
}

fn default_subject() -> String {
    "Message {n}".into()
}
fn default_body() -> String {
    "Hello {rcpt}, this is message {n}.".into()
}
fn default_from() -> String {
    "noreply@example.com".into()
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Every call to `provider` is refused (connection refused) from `at` until `until`.
    ProviderOutage,
    /// `provider` suspends the account at `at` (whatever its rates).
    ProviderSuspend,
    /// An operator's kill switch on `scope`: `all`, `tenant:NAME` or `key:ID`.
    Pause,
    /// Lifts the pause of `scope` and releases what it held, in accept order.
    Resume,
}

/// Something that happens at `at`; which other keys it needs depends on `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSpec {
    pub kind: Spanned<EventKind>,
    pub at: Dur,
    #[serde(default)]
    pub until: Option<Dur>,
    #[serde(default)]
    pub provider: Option<Spanned<String>>,
    #[serde(default)]
    pub scope: Option<Spanned<String>>,
}

/// What must hold at the end; each becomes a pass/fail line in the summary.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub attack_delivered_max: Option<u64>,
    /// From the first attack message to the first attack message held.
    pub contained_within_secs: Option<f64>,
    /// Peak bounce rate any provider saw (over its window, once its sample counts).
    pub provider_bounce_rate_max: Option<f64>,
    pub provider_complaint_rate_max: Option<f64>,
    pub legitimate_lost_max: Option<u64>,
    pub legitimate_held_max: Option<u64>,
    /// Longest time from accept to delivery of a legitimate message.
    pub legitimate_delay_max_secs: Option<f64>,
    /// Guard alerts raised (with or without a hold): at least / at most.
    pub alerts_min: Option<u64>,
    pub alerts_max: Option<u64>,
    /// A signal that must have tripped.
    pub signal: Option<String>,
    /// No provider may have suspended the account.
    #[serde(default)]
    pub no_provider_suspended: bool,
}

/// A bad scenario: where and what.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ScenarioError {
    pub path: String,
    pub message: String,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Scenario {
    pub fn parse(path: &str, text: &str) -> Result<Self, ScenarioError> {
        let err = |message: String| ScenarioError {
            path: path.to_owned(),
            message,
        };
        let s: Scenario = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|r| format!("line {}: ", line_of(text, r.start)))
                .unwrap_or_default();
            err(format!("{at}{}", e.message()))
        })?;
        s.check(text).map_err(err)?;
        Ok(s)
    }

    /// Cross-references: every name used is declared once.
    fn check(&self, text: &str) -> Result<(), String> {
        let at = |s: &Spanned<String>, key: &str| {
            format!(
                "line {}, `{key}` = {:?}",
                line_of(text, s.span().start),
                s.get_ref()
            )
        };
        let mut tenants = BTreeSet::new();
        for t in &self.tenants {
            if !tenants.insert(t.name.get_ref().as_str()) {
                return Err(format!("{}: declared twice", at(&t.name, "tenants.name")));
            }
        }
        let providers: BTreeSet<&str> = self
            .providers
            .iter()
            .map(|p| p.name.get_ref().as_str())
            .collect();
        if providers.is_empty() {
            return Err("`providers`: at least one simulated provider is needed".into());
        }
        for t in &self.tenants {
            for p in t.route.iter().flatten() {
                if !providers.contains(p.get_ref().as_str()) {
                    return Err(format!("{}: no such provider", at(p, "tenants.route")));
                }
            }
        }
        let mut keys = BTreeSet::new();
        for k in &self.keys {
            if !tenants.contains(k.tenant.get_ref().as_str()) {
                return Err(format!("{}: no such tenant", at(&k.tenant, "keys.tenant")));
            }
            if !keys.insert(k.id.get_ref().as_str()) {
                return Err(format!("{}: declared twice", at(&k.id, "keys.id")));
            }
        }
        let mut streams = BTreeSet::new();
        for s in &self.streams {
            if !streams.insert(s.name.get_ref().as_str()) {
                return Err(format!("{}: declared twice", at(&s.name, "streams.name")));
            }
            let outside = s.key.get_ref() == "none";
            if !outside && !keys.contains(s.key.get_ref().as_str()) {
                return Err(format!("{}: no such key", at(&s.key, "streams.key")));
            }
            match (&s.provider, outside) {
                (None, true) => {
                    return Err(format!(
                        "{}: a stream outside Postern needs `provider`",
                        at(&s.key, "streams.key")
                    ));
                }
                (Some(p), _) if !providers.contains(p.get_ref().as_str()) => {
                    return Err(format!("{}: no such provider", at(p, "streams.provider")));
                }
                _ => {}
            }
            for (v, k) in [
                (s.bounce_rate, "bounce_rate"),
                (s.complaint_rate, "complaint_rate"),
                (s.autoreply_rate, "autoreply_rate"),
            ] {
                if !(0.0..=1.0).contains(&v) {
                    return Err(format!(
                        "{}: `{k}` must be between 0 and 1",
                        at(&s.name, "streams.name")
                    ));
                }
            }
            if s.recipients.size == 0 || s.recipients.domains == 0 || s.recipients.per_message == 0
            {
                return Err(format!(
                    "{}: `recipients` needs size, domains and per_message above 0",
                    at(&s.name, "streams.name")
                ));
            }
        }
        for e in &self.events {
            let line = line_of(text, e.kind.span().start);
            match e.kind.get_ref() {
                EventKind::ProviderOutage | EventKind::ProviderSuspend => {
                    let Some(provider) = &e.provider else {
                        return Err(format!(
                            "line {line}, `events.provider`: this event needs a provider"
                        ));
                    };
                    if !providers.contains(provider.get_ref().as_str()) {
                        return Err(format!(
                            "{}: no such provider",
                            at(provider, "events.provider")
                        ));
                    }
                    if *e.kind.get_ref() == EventKind::ProviderOutage
                        && e.until.is_none_or(|u| u.0 <= e.at.0)
                    {
                        return Err(format!(
                            "line {line}, `events.until`: an outage needs an end after `at`"
                        ));
                    }
                }
                EventKind::Pause | EventKind::Resume => {
                    let Some(scope) = &e.scope else {
                        return Err(format!(
                            "line {line}, `events.scope`: this event needs a scope"
                        ));
                    };
                    let ok = match scope.get_ref().split_once(':') {
                        None => scope.get_ref() == "all",
                        Some(("tenant", t)) => tenants.contains(t),
                        Some(("key", k)) => keys.contains(k),
                        _ => false,
                    };
                    if !ok {
                        return Err(format!(
                            "{}: a scope is `all`, `tenant:NAME` or `key:ID` of this scenario",
                            at(scope, "events.scope")
                        ));
                    }
                }
            }
        }
        if self.scenario.step.0 <= 0 || self.scenario.duration.0 <= 0 {
            return Err("`scenario.step` and `scenario.duration` must be positive".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::duration::parse_ms;

    const MIN: &str = r#"
[scenario]
name = "x"
duration = "1m"

[[tenants]]
name = "acme"

[[keys]]
id = "k1"
tenant = "acme"

[[providers]]
name = "ses"

[[streams]]
name = "app"
kind = "legitimate"
key = "k1"
rate = { per_second = 5 }
recipients = { pool = "customers", size = 100 }
"#;

    #[test]
    fn a_minimal_scenario_parses() {
        let s = Scenario::parse("x.toml", MIN).expect("parses");
        assert_eq!(s.scenario.duration, Dur(60_000));
        assert_eq!(s.streams[0].rate.at(10_000, 60_000), 5.0);
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let bad = MIN.replace("kind = \"legitimate\"", "kind = \"legitimate\"\nspeed = 4");
        let e = Scenario::parse("x.toml", &bad).expect_err("unknown key");
        let msg = e.to_string();
        assert!(msg.contains("line 19") && msg.contains("speed"), "{msg}");
    }

    #[test]
    fn a_key_of_no_tenant_is_named_with_its_line() {
        let bad = MIN.replace("tenant = \"acme\"", "tenant = \"acne\"");
        let msg = Scenario::parse("x.toml", &bad)
            .expect_err("bad ref")
            .to_string();
        assert!(
            msg.contains("line 11") && msg.contains("keys.tenant") && msg.contains("acne"),
            "{msg}"
        );
    }

    #[test]
    fn rate_curves() {
        let r = Rate {
            per_second: 10.0,
            ramp_to: Some(110.0),
            burst_every: None,
            burst_length: None,
            burst_rate: None,
            schedule: None,
        };
        assert_eq!(r.at(500, 1000), 60.0);
        let b = Rate {
            per_second: 1.0,
            ramp_to: None,
            burst_every: Some(Dur(60_000)),
            burst_length: Some(Dur(5_000)),
            burst_rate: Some(100.0),
            schedule: None,
        };
        assert_eq!((b.at(61_000, 0), b.at(66_000, 0)), (100.0, 1.0));
        let s = Rate {
            per_second: 0.0,
            ramp_to: None,
            burst_every: None,
            burst_length: None,
            burst_rate: None,
            schedule: Some(vec![(0.0, 2.0), (30.0, 9.0)]),
        };
        assert_eq!((s.at(29_999, 0), s.at(30_000, 0)), (2.0, 9.0));
        assert_eq!(parse_ms("1.5s"), Some(1_500));
        assert_eq!(parse_ms("10x"), None);
    }
}
