//! What a run counts, and the JSON summary with each expectation judged.

use serde::Serialize;
use serde_json::{Value, json};

use super::scenario::{Scenario, StreamKind};

#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    Delivered,
    Bounced,
    Lost,
}

#[derive(Debug, Default, Serialize)]
pub struct StreamTally {
    pub name: String,
    pub kind: &'static str,
    /// Accepted by Postern (0 for a stream outside it).
    pub accepted: u64,
    /// Sent around Postern with a provider's credential.
    pub sent_outside: u64,
    pub delivered: u64,
    /// Refused by their recipients (as the pool declares).
    pub bounced: u64,
    /// Still held at the end.
    pub held: u64,
    /// Held at some point (at accept or before a call).
    pub held_ever: u64,
    /// Refused at the API by the guard's throttle on the key (HTTP 429): never accepted, so
    /// neither delivered nor lost; the sender keeps it.
    pub throttled: u64,
    /// Still waiting in the queue at the end.
    pub queued: u64,
    /// Expired or failed: what a sender would call lost.
    pub lost: u64,
    /// Longest accept-to-delivery time.
    pub delay_max_secs: f64,
    #[serde(skip)]
    n: u64,
    #[serde(skip)]
    attack: bool,
}

#[derive(Debug, Serialize)]
pub struct AlertSeen {
    pub at_secs: f64,
    pub signal: String,
    pub scope: String,
    pub target: String,
    pub action: String,
    pub evidence: Value,
}

#[derive(Debug, Serialize)]
pub struct ProviderTally {
    pub name: String,
    /// Recipients sent to (by Postern and from outside).
    pub sent: u64,
    pub calls: u64,
    pub peak_bounce_rate: f64,
    pub peak_complaint_rate: f64,
    pub suspended_at_secs: Option<f64>,
}

#[derive(Debug, Default)]
pub struct Tally {
    streams: Vec<StreamTally>,
    first_attack_ms: Option<i64>,
    contained_ms: Option<i64>,
    false_holds: u64,
    false_hold_max_ms: i64,
    alerts: Vec<AlertSeen>,
    providers: Vec<ProviderTally>,
}

fn secs(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl Tally {
    pub fn new(sc: &Scenario) -> Self {
        Self {
            streams: sc
                .streams
                .iter()
                .map(|s| StreamTally {
                    name: s.name.get_ref().clone(),
                    kind: match s.kind {
                        StreamKind::Legitimate => "legitimate",
                        StreamKind::Attack => "attack",
                    },
                    attack: s.kind == StreamKind::Attack,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    pub fn next_n(&mut self, i: usize) -> u64 {
        self.streams[i].n += 1;
        self.streams[i].n
    }

    pub fn attack_started(&mut self, kind: StreamKind, at: i64) {
        if kind == StreamKind::Attack && self.first_attack_ms.is_none() {
            self.first_attack_ms = Some(at);
        }
    }

    pub fn accepted(&mut self, i: usize) {
        self.streams[i].accepted += 1;
    }

    pub fn throttled(&mut self, i: usize) {
        self.streams[i].throttled += 1;
    }

    pub fn outside(&mut self, i: usize) {
        self.streams[i].sent_outside += 1;
    }

    pub fn held(&mut self, i: usize, at: i64, _tag: &str) {
        let s = &mut self.streams[i];
        s.held_ever += 1;
        if s.attack && self.contained_ms.is_none() {
            self.contained_ms = Some(at);
        }
        if !s.attack {
            self.false_holds += 1;
        }
    }

    /// A held message let go after `waited` ms.
    pub fn released(&mut self, i: usize, waited: i64) {
        if !self.streams[i].attack {
            self.false_hold_max_ms = self.false_hold_max_ms.max(waited);
        }
    }

    pub fn still_held(&mut self, i: usize, waited: i64, _tag: &str) {
        self.streams[i].held += 1;
        self.released(i, waited);
    }

    pub fn still_queued(&mut self, i: usize) {
        self.streams[i].queued += 1;
    }

    pub fn done(&mut self, i: usize, o: Outcome, waited: i64, _provider: Option<&str>) {
        let s = &mut self.streams[i];
        match o {
            Outcome::Delivered => s.delivered += 1,
            Outcome::Bounced => s.bounced += 1,
            Outcome::Lost => s.lost += 1,
        }
        if !matches!(o, Outcome::Lost) {
            s.delay_max_secs = s.delay_max_secs.max(secs(waited));
        }
    }

    pub fn alert(&mut self, a: AlertSeen) {
        self.alerts.push(a);
    }

    pub fn provider(
        &mut self,
        name: &str,
        sent: u64,
        calls: u64,
        bounce: f64,
        complaint: f64,
        suspended: Option<i64>,
    ) {
        self.providers.push(ProviderTally {
            name: name.to_owned(),
            sent,
            calls,
            peak_bounce_rate: round4(bounce),
            peak_complaint_rate: round4(complaint),
            suspended_at_secs: suspended.map(secs),
        });
    }

    /// The summary, with every expectation judged; the flag says whether all passed.
    pub fn summary(&self, sc: &Scenario, seed: u64) -> (Value, bool) {
        let legit = || self.streams.iter().filter(|s| !s.attack);
        let attack_delivered: u64 = self
            .streams
            .iter()
            .filter(|s| s.attack)
            .map(|s| s.delivered + s.bounced)
            .sum();
        let to_contain = match (self.first_attack_ms, self.contained_ms) {
            (Some(a), Some(c)) => Some(secs(c - a)),
            _ => None,
        };
        let peak_bounce = self
            .providers
            .iter()
            .map(|p| p.peak_bounce_rate)
            .fold(0.0, f64::max);
        let peak_complaint = self
            .providers
            .iter()
            .map(|p| p.peak_complaint_rate)
            .fold(0.0, f64::max);
        let legit_lost: u64 = legit().map(|s| s.lost).sum();
        let legit_throttled: u64 = legit().map(|s| s.throttled).sum();
        let legit_delay = legit().map(|s| s.delay_max_secs).fold(0.0, f64::max);
        let suspended: Vec<&str> = self
            .providers
            .iter()
            .filter(|p| p.suspended_at_secs.is_some())
            .map(|p| p.name.as_str())
            .collect();
        let e = &sc.expect;
        let mut checks = Vec::new();
        let mut check = |name: &str, expected: Value, actual: Value, pass: bool| {
            checks.push(
                json!({ "name": name, "expected": expected, "actual": actual, "pass": pass }),
            );
        };
        if let Some(max) = e.attack_delivered_max {
            check(
                "attack_delivered_max",
                json!(max),
                json!(attack_delivered),
                attack_delivered <= max,
            );
        }
        if let Some(max) = e.contained_within_secs {
            check(
                "contained_within_secs",
                json!(max),
                json!(to_contain),
                to_contain.is_some_and(|t| t <= max),
            );
        }
        if let Some(max) = e.provider_bounce_rate_max {
            check(
                "provider_bounce_rate_max",
                json!(max),
                json!(peak_bounce),
                peak_bounce <= max,
            );
        }
        if let Some(max) = e.provider_complaint_rate_max {
            check(
                "provider_complaint_rate_max",
                json!(max),
                json!(peak_complaint),
                peak_complaint <= max,
            );
        }
        if let Some(max) = e.legitimate_lost_max {
            check(
                "legitimate_lost_max",
                json!(max),
                json!(legit_lost),
                legit_lost <= max,
            );
        }
        if let Some(max) = e.legitimate_held_max {
            check(
                "legitimate_held_max",
                json!(max),
                json!(self.false_holds),
                self.false_holds <= max,
            );
        }
        if let Some(max) = e.legitimate_delay_max_secs {
            check(
                "legitimate_delay_max_secs",
                json!(max),
                json!(legit_delay),
                legit_delay <= max,
            );
        }
        let alerts = self.alerts.len() as u64;
        if let Some(min) = e.alerts_min {
            check("alerts_min", json!(min), json!(alerts), alerts >= min);
        }
        if let Some(max) = e.alerts_max {
            check("alerts_max", json!(max), json!(alerts), alerts <= max);
        }
        if let Some(sig) = &e.signal {
            let seen = self.alerts.iter().any(|a| &a.signal == sig);
            check(
                "signal",
                json!(sig),
                json!(
                    self.alerts
                        .iter()
                        .map(|a| a.signal.as_str())
                        .collect::<Vec<_>>()
                ),
                seen,
            );
        }
        if e.no_provider_suspended {
            check(
                "no_provider_suspended",
                json!(true),
                json!(suspended),
                suspended.is_empty(),
            );
        }
        let passed = checks.iter().all(|c| c["pass"] == json!(true));
        let summary = json!({
            "scenario": sc.scenario.name,
            "seed": seed,
            "duration_secs": secs(sc.scenario.duration.0),
            "streams": self.streams,
            "attack": {
                "first_message_at_secs": self.first_attack_ms.map(secs),
                "contained_at_secs": self.contained_ms.map(secs),
                "time_to_contain_secs": to_contain,
                "delivered": attack_delivered,
            },
            "providers": self.providers,
            "false_holds": { "count": self.false_holds, "max_delay_secs": secs(self.false_hold_max_ms) },
            "legitimate_delay_max_secs": legit_delay,
            "legitimate_throttled": legit_throttled,
            "alerts": self.alerts,
            "expectations": checks,
            "passed": passed,
        });
        (summary, passed)
    }
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}
