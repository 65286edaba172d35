//! `[guard]` in postern.toml: the signals' thresholds, and `[guard.policy]` (see
//! `guard/policy.rs`) for what the scores lead to. Every threshold is explained where its
//! signal is computed (`guard/signals/`).

use serde::Deserialize;

use super::policy::PolicyConfig;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GuardConfig {
    pub enabled: bool,
    /// Volume: a key sending more than this many messages in a minute, whatever its history.
    pub volume_floor_per_minute: u64,
    /// Volume: ... or in one second.
    pub burst_floor_per_second: u64,
    /// Volume: ... or more than this many times its own learned rate (both windows).
    pub volume_factor: f64,
    /// Minutes of history before a key's learned rate counts.
    pub warmup_minutes: u32,
    /// Tenant (hour), key and provider (15 minutes) bounce rate over a minimum sample.
    pub bounce_rate: f64,
    pub bounce_min_sample: u64,
    pub complaint_rate: f64,
    pub complaint_min_sample: u64,
    /// Auto-replies in 15 minutes that are always a finding (more, with a learned count).
    pub autoreply_floor: u64,
    /// Auto-replies as a share of the messages sent in the same 15 minutes that are normal.
    pub autoreply_share: f64,
    /// Orphan feedback messages within 15 minutes that raise an alert.
    pub orphan_limit: u64,
    /// Novelty: the tenant must know this many recipients, the key have sent this many.
    pub novelty_min_known: u64,
    pub novelty_min_sample: u64,
    /// Share of a key's last 100 recipients new to the tenant that is a finding.
    pub novelty_share: f64,
    /// Share of a key's last 100 recipients at domains new to the tenant.
    pub new_domain_share: f64,
    /// Distinct domains among a key's last 100 recipients.
    pub spread_floor: u64,
    /// Content: a template first seen less than this long ago is new.
    pub content_new_secs: u64,
    /// Content: messages of one new template in ten seconds, and their share.
    pub content_min_messages: u64,
    pub content_share: f64,
    /// Access: uses of a key before a new network or agent counts.
    pub access_warmup_uses: u64,
    /// Ledger: compare provider counters with Postern's deliveries.
    pub ledger_check: bool,
    pub ledger_tolerance: f64,
    pub ledger_slack: u64,
    pub policy: PolicyConfig,
    /// Sends announced in advance (`[[guard.planned]]`, see guard/planned.rs).
    pub planned: Vec<crate::guard::planned::PlannedSend>,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            volume_floor_per_minute: 3_000,
            burst_floor_per_second: 50,
            volume_factor: 10.0,
            warmup_minutes: 10,
            bounce_rate: 0.02,
            bounce_min_sample: 200,
            complaint_rate: 0.001,
            complaint_min_sample: 1_000,
            autoreply_floor: 20,
            autoreply_share: 0.05,
            orphan_limit: 20,
            novelty_min_known: 200,
            novelty_min_sample: 200,
            novelty_share: 0.6,
            new_domain_share: 0.3,
            spread_floor: 60,
            content_new_secs: 600,
            content_min_messages: 50,
            content_share: 0.5,
            access_warmup_uses: 100,
            planned: Vec::new(),
            ledger_check: true,
            ledger_tolerance: 0.1,
            ledger_slack: 100,
            policy: PolicyConfig::default(),
        }
    }
}

impl GuardConfig {
    /// The first bad setting, as (dotted key, why).
    pub fn check(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, why: &str| Err((format!("guard.{k}"), why.to_owned()));
        for (k, v) in [
            ("bounce_rate", self.bounce_rate),
            ("complaint_rate", self.complaint_rate),
            ("novelty_share", self.novelty_share),
            ("new_domain_share", self.new_domain_share),
            ("content_share", self.content_share),
        ] {
            if !(v.is_finite() && v > 0.0 && v <= 1.0) {
                return bad(k, "must be a share between 0 and 1 (0.02 is 2%)");
            }
        }
        if !(self.volume_factor.is_finite() && self.volume_factor >= 1.0) {
            return bad("volume_factor", "must be 1 or more");
        }
        if !(self.ledger_tolerance.is_finite() && self.ledger_tolerance >= 0.0) {
            return bad("ledger_tolerance", "must be 0 or more (0.1 is 10%)");
        }
        for (k, v) in [
            ("volume_floor_per_minute", self.volume_floor_per_minute),
            ("burst_floor_per_second", self.burst_floor_per_second),
            ("orphan_limit", self.orphan_limit),
            ("content_min_messages", self.content_min_messages),
        ] {
            if v == 0 {
                return bad(k, "must be at least 1");
            }
        }
        self.policy.check()
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn err(toml: &str) -> String {
        format!(
            "{:#}",
            Config::from_toml_and_env(toml, []).expect_err("accepted a bad policy")
        )
    }

    #[test]
    fn a_policy_file_sets_scores_and_thresholds() {
        let c = Config::from_toml_and_env(
            "[guard.policy]\nhold_key_at = 4.5\nrevoke_key_at = 6\n\n[guard.policy.scores]\nvolume = 2.5\n",
            [],
        )
        .expect("valid");
        assert_eq!(c.guard.policy.hold_key_at, 4.5);
        assert_eq!(c.guard.policy.scores.volume, 2.5);
        assert_eq!(c.guard.policy.scores.novelty, 1.5, "defaults kept");
        let env = [
            (
                "POSTERN_GUARD_POLICY_THROTTLE_AT".to_owned(),
                "2".to_owned(),
            ),
            (
                "POSTERN_GUARD_POLICY_SCORES_CONTENT".to_owned(),
                "1".to_owned(),
            ),
        ];
        let c = Config::from_toml_and_env("", env).expect("valid");
        assert_eq!(c.guard.policy.throttle_at, 2.0);
        assert_eq!(c.guard.policy.scores.content, 1.0);
    }

    #[test]
    fn bad_policies_name_the_line_and_key() {
        let e = err("[guard]\nenabled = true\n\n[guard.policy]\nalert_at = 2\nhold_key_at = -3\n");
        assert!(e.contains("line 6, `guard.policy.hold_key_at`"), "{e}");
        let e = err("[guard.policy.scores]\nvolume = 1\nnovelity = 2\n");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("novelity"), "{e}");
        let e = err("[guard.policy]\nthrottle_per_sec = \"fast\"\n");
        assert!(e.contains("line 2"), "{e}");
        let e = err("[guard.policy]\nhold_key_at = 3\nrevoke_key_at = 2\n");
        assert!(e.contains("line 3, `guard.policy.revoke_key_at`"), "{e}");
        let e = err("[guard]\nbounce_rate = 2\n");
        assert!(e.contains("line 2, `guard.bounce_rate`"), "{e}");
    }
}
