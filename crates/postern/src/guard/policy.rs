//! Containment policy, `[guard.policy]`: each signal's finding adds its score to its scope (an
//! API key, a tenant, a provider) for `memory_secs`; a signal counts once however often it
//! fires. The scope's score decides the action, escalating, each action taken once:
//!
//! | scope | score ≥ | action |
//! |---|---|---|
//! | any | `alert_at` (2) | alert only |
//! | key | `throttle_at` (2.5) | cap the key's rate at `max(throttle_per_sec, 2 × its learned rate)` |
//! | key | `hold_key_at` (3) | hold the key's new mail (accepted as `held`, kept, never sent until released) |
//! | key | `revoke_key_at` (off) | revoke the key (and hold what it queued) |
//! | tenant | `hold_tenant_at` (3) | hold the tenant's new mail (every key) |
//! | provider | `provider_out_at` (3) | take the provider out of rotation |
//!
//! The default scores are set so that one loud signal alone never holds (a newsletter is loud;
//! a new tenant mails only new people), while two independent ones do: the stolen-key
//! incident (a burst from a new network to purchased lists) shows volume 1.5 + new network 1 +
//! new domains 1 + novelty 1.5 within ~50 messages. Bounce and complaint rates at the
//! provider-safe triggers, and a provider ledger mismatch, are strong enough alone (3).

use std::collections::HashMap;

use serde::Deserialize;

use super::signals::Finding;
use crate::guard::PauseScope;

/// `[guard.policy.scores]`: what one finding of each signal adds to its scope's score.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Scores {
    pub volume: f64,
    pub novelty: f64,
    pub domain_spread: f64,
    pub content: f64,
    pub new_network: f64,
    pub new_user_agent: f64,
    pub off_hours: f64,
    pub scope_refused: f64,
    pub bounce_rate: f64,
    pub complaint_rate: f64,
    pub autoreply_rate: f64,
    pub ledger: f64,
    pub orphan_feedback: f64,
    /// A provider's own bounce or complaint rate: alert (the traffic, not the provider, is
    /// the cause; taking it out would move the bad mail to the next one).
    pub provider_bounce_rate: f64,
    pub provider_complaint_rate: f64,
}

impl Default for Scores {
    fn default() -> Self {
        Self {
            volume: 1.5,
            novelty: 1.5,
            domain_spread: 1.0,
            content: 0.5,
            new_network: 1.0,
            new_user_agent: 0.5,
            off_hours: 0.5,
            scope_refused: 1.0,
            bounce_rate: 3.0,
            complaint_rate: 3.0,
            autoreply_rate: 1.0,
            ledger: 3.0,
            orphan_feedback: 2.0,
            provider_bounce_rate: 2.0,
            provider_complaint_rate: 2.0,
        }
    }
}

impl Scores {
    pub fn of(&self, signal: &str) -> f64 {
        match signal {
            "volume" => self.volume,
            "novelty" => self.novelty,
            "domain_spread" => self.domain_spread,
            "content" => self.content,
            "new_network" => self.new_network,
            "new_user_agent" => self.new_user_agent,
            "off_hours" => self.off_hours,
            "scope_refused" => self.scope_refused,
            "bounce_rate" => self.bounce_rate,
            "complaint_rate" => self.complaint_rate,
            "autoreply_rate" => self.autoreply_rate,
            "ledger" => self.ledger,
            "orphan_feedback" => self.orphan_feedback,
            "provider_bounce_rate" => self.provider_bounce_rate,
            "provider_complaint_rate" => self.provider_complaint_rate,
            _ => 0.0,
        }
    }

    fn all(&self) -> [(&'static str, f64); 15] {
        [
            ("volume", self.volume),
            ("novelty", self.novelty),
            ("domain_spread", self.domain_spread),
            ("content", self.content),
            ("new_network", self.new_network),
            ("new_user_agent", self.new_user_agent),
            ("off_hours", self.off_hours),
            ("scope_refused", self.scope_refused),
            ("bounce_rate", self.bounce_rate),
            ("complaint_rate", self.complaint_rate),
            ("autoreply_rate", self.autoreply_rate),
            ("ledger", self.ledger),
            ("orphan_feedback", self.orphan_feedback),
            ("provider_bounce_rate", self.provider_bounce_rate),
            ("provider_complaint_rate", self.provider_complaint_rate),
        ]
    }
}

/// `[guard.policy]`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub alert_at: f64,
    pub throttle_at: f64,
    pub throttle_per_sec: f64,
    pub hold_key_at: f64,
    /// 0 = never (the default: revoking breaks the application until it gets a new key).
    pub revoke_key_at: f64,
    pub hold_tenant_at: f64,
    pub provider_out_at: f64,
    pub memory_secs: u64,
    pub scores: Scores,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            alert_at: 2.0,
            throttle_at: 2.5,
            throttle_per_sec: 5.0,
            hold_key_at: 3.0,
            revoke_key_at: 0.0,
            hold_tenant_at: 3.0,
            provider_out_at: 3.0,
            memory_secs: 900,
            scores: Scores::default(),
        }
    }
}

impl PolicyConfig {
    /// The first bad setting, as (dotted key, why).
    pub fn check(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, why: &str| Err((format!("guard.policy.{k}"), why.to_owned()));
        for (k, v) in [
            ("alert_at", self.alert_at),
            ("throttle_at", self.throttle_at),
            ("hold_key_at", self.hold_key_at),
            ("hold_tenant_at", self.hold_tenant_at),
            ("provider_out_at", self.provider_out_at),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(k, "must be a score above 0");
            }
        }
        if !(self.revoke_key_at.is_finite() && self.revoke_key_at >= 0.0) {
            return bad("revoke_key_at", "must be a score above 0, or 0 for never");
        }
        if self.revoke_key_at > 0.0 && self.revoke_key_at < self.hold_key_at {
            return bad("revoke_key_at", "must not be below hold_key_at");
        }
        if !(self.throttle_per_sec.is_finite() && self.throttle_per_sec > 0.0) {
            return bad(
                "throttle_per_sec",
                "must be a rate above 0 (messages per second)",
            );
        }
        if self.memory_secs == 0 {
            return bad("memory_secs", "must be at least 1");
        }
        for (k, v) in self.scores.all() {
            if !(v.is_finite() && v >= 0.0) {
                return Err((
                    format!("guard.policy.scores.{k}"),
                    "must be a score of 0 or more".into(),
                ));
            }
        }
        Ok(())
    }
}

/// What the guard does about a scope.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    Alert,
    /// Cap the key's rate (messages per second).
    Throttle(f64),
    Hold,
    Revoke,
    ProviderOut,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Alert => "alert",
            Self::Throttle(_) => "throttle",
            Self::Hold => "hold",
            Self::Revoke => "revoke",
            Self::ProviderOut => "provider_out",
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Self::Alert => 1,
            Self::Throttle(_) => 2,
            Self::Hold | Self::ProviderOut => 3,
            Self::Revoke => 4,
        }
    }
}

#[derive(Default)]
struct ScopeState {
    /// Active findings: signal → (when, score, finding). The evidence is built from the
    /// findings only when a decision is made (a finding can fire on every message).
    findings: HashMap<&'static str, (i64, f64, Finding)>,
    /// The strongest action taken so far.
    acted: u8,
}

/// A decision: the action, the scope's score and the findings behind it.
#[derive(Debug, Clone)]
pub struct Decision {
    pub action: Action,
    pub score: f64,
    pub evidence: serde_json::Value,
    /// When the earliest finding behind it was made: where the suspicion starts.
    pub since: i64,
}

/// Scores per scope, and the actions taken.
#[derive(Default)]
pub struct Judge {
    scopes: HashMap<(&'static str, String), ScopeState>,
}

impl Judge {
    /// Adds a finding; a decision when the scope's score reaches an action not yet taken.
    /// `learned_per_sec` is the key's learned rate, for the throttle.
    pub fn add(
        &mut self,
        p: &PolicyConfig,
        f: &Finding,
        now: i64,
        learned_per_sec: Option<f64>,
    ) -> Option<Decision> {
        let s = self
            .scopes
            .entry((f.scope.kind(), f.scope.target().to_owned()))
            .or_default();
        let memory = p.memory_secs as i64 * 1000;
        s.findings.retain(|_, (at, _, _)| now - *at < memory);
        if s.findings.is_empty() {
            // Quiet for a whole memory: what was done is done; judge afresh.
            s.acted = 0;
        }
        match s.findings.get_mut(f.signal) {
            Some(entry) => {
                entry.0 = now;
                entry.1 = p.scores.of(f.signal);
                entry.2.clone_from(f);
            }
            None => {
                s.findings
                    .insert(f.signal, (now, p.scores.of(f.signal), f.clone()));
            }
        }
        let score: f64 = s.findings.values().map(|(_, sc, _)| sc).sum();
        let action = match &f.scope {
            PauseScope::Key(_) => {
                if p.revoke_key_at > 0.0 && score >= p.revoke_key_at {
                    Some(Action::Revoke)
                } else if score >= p.hold_key_at {
                    Some(Action::Hold)
                } else if score >= p.throttle_at {
                    let learned = learned_per_sec.unwrap_or(0.0) * 2.0;
                    Some(Action::Throttle(p.throttle_per_sec.max(learned)))
                } else {
                    None
                }
            }
            PauseScope::Tenant(_) => (score >= p.hold_tenant_at).then_some(Action::Hold),
            PauseScope::Provider(_) => (score >= p.provider_out_at).then_some(Action::ProviderOut),
            PauseScope::All | PauseScope::Channel(_) => None,
        }
        .or((score >= p.alert_at).then_some(Action::Alert))?;
        if action.rank() <= s.acted {
            return None;
        }
        s.acted = action.rank();
        let mut findings: Vec<&Finding> = s.findings.values().map(|(_, _, f)| f).collect();
        findings.sort_by_key(|f| f.signal);
        let findings: Vec<serde_json::Value> =
            findings.into_iter().map(Finding::evidence).collect();
        let since = s
            .findings
            .values()
            .map(|(at, _, _)| *at)
            .min()
            .unwrap_or(now);
        Some(Decision {
            action,
            since,
            score: super::signals::round4(score),
            evidence: serde_json::json!({
                "score": super::signals::round4(score),
                "trigger": f.signal,
                "findings": findings,
            }),
        })
    }

    /// Forgets a scope (an operator lifted what the guard did), so it can be judged afresh.
    pub fn reset(&mut self, scope: &PauseScope) {
        self.scopes
            .remove(&(scope.kind(), scope.target().to_owned()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn finding(scope: PauseScope, signal: &'static str) -> Finding {
        Finding {
            scope,
            signal,
            value: 1.0,
            threshold: 0.5,
            window_secs: 1,
            detail: json!({}),
        }
    }

    #[test]
    fn one_loud_signal_does_not_hold_two_do() {
        let p = PolicyConfig::default();
        let mut j = Judge::default();
        let key = || PauseScope::Key("k".into());
        assert!(j.add(&p, &finding(key(), "volume"), 0, None).is_none());
        assert!(
            j.add(&p, &finding(key(), "volume"), 10, None).is_none(),
            "counted once"
        );
        let d = j
            .add(&p, &finding(key(), "new_network"), 20, Some(5.0))
            .expect("2.5");
        assert_eq!(d.action, Action::Throttle(10.0));
        let d = j.add(&p, &finding(key(), "novelty"), 30, None).expect("4");
        assert_eq!((d.action, d.score), (Action::Hold, 4.0));
        assert_eq!(d.evidence["findings"].as_array().map(Vec::len), Some(3));
        assert!(
            j.add(&p, &finding(key(), "content"), 40, None).is_none(),
            "already held"
        );
    }

    #[test]
    fn findings_age_out_of_the_score() {
        let p = PolicyConfig::default();
        let mut j = Judge::default();
        let key = || PauseScope::Key("k".into());
        j.add(&p, &finding(key(), "volume"), 0, None);
        assert!(
            j.add(&p, &finding(key(), "novelty"), 901_000, None)
                .is_none()
        );
    }

    #[test]
    fn strong_signals_act_alone_per_scope() {
        let p = PolicyConfig::default();
        let mut j = Judge::default();
        let d = j
            .add(
                &p,
                &finding(PauseScope::Tenant("t".into()), "bounce_rate"),
                0,
                None,
            )
            .expect("3");
        assert_eq!(d.action, Action::Hold);
        let d = j
            .add(
                &p,
                &finding(PauseScope::Provider("ses".into()), "ledger"),
                0,
                None,
            )
            .expect("3");
        assert_eq!(d.action, Action::ProviderOut);
        let d = j
            .add(&p, &finding(PauseScope::All, "orphan_feedback"), 0, None)
            .expect("alert");
        assert_eq!(d.action, Action::Alert);
    }

    #[test]
    fn revoke_when_configured() {
        let p = PolicyConfig {
            revoke_key_at: 4.0,
            ..Default::default()
        };
        let mut j = Judge::default();
        let key = || PauseScope::Key("k".into());
        j.add(&p, &finding(key(), "bounce_rate"), 0, None);
        let d = j
            .add(&p, &finding(key(), "new_network"), 0, None)
            .expect("4");
        assert_eq!(d.action, Action::Revoke);
    }

    #[test]
    fn bad_settings_are_named() {
        let p = PolicyConfig {
            hold_key_at: -1.0,
            ..Default::default()
        };
        assert_eq!(p.check().unwrap_err().0, "guard.policy.hold_key_at");
        let p = PolicyConfig {
            scores: Scores {
                novelty: f64::NAN,
                ..Default::default()
            },
            ..Default::default()
        };
        assert_eq!(p.check().unwrap_err().0, "guard.policy.scores.novelty");
    }
}
