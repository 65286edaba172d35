//! Provider counters against Postern's own ledger. A provider that says it sent more in the
//! last 24 hours (SES `GetAccount` → `SendQuota.SentLast24Hours`) than Postern delivered
//! through it (`delivered` events with that provider, counted in the store, so every node's
//! deliveries and a restart are covered) has a credential in use somewhere else. Together with
//! orphan feedback (bounces and auto-replies about mail Postern never sent) this is the only
//! trace such misuse leaves; the action is to take the provider out of rotation (its traffic
//! goes to the next provider of each route) and alert.
//!
//! The trigger is `provider > ledger × (1 + ledger_tolerance) + ledger_slack` (10% and 100
//! by default): providers count with some delay and round, and a message in flight at the
//! moment of the poll is on one side only.

use serde_json::json;

use super::Finding;
use crate::guard::{GuardConfig, PauseScope};

/// Compares a provider's own count with the ledger's.
pub fn check(provider: &str, theirs: u64, ours: u64, cfg: &GuardConfig) -> Option<Finding> {
    if !cfg.ledger_check {
        return None;
    }
    let limit = ours as f64 * (1.0 + cfg.ledger_tolerance) + cfg.ledger_slack as f64;
    (theirs as f64 > limit).then(|| Finding {
        scope: PauseScope::Provider(provider.to_owned()),
        signal: "ledger",
        value: theirs as f64,
        threshold: limit.round(),
        window_secs: 86_400,
        detail: json!({
            "provider_sent_last_24h": theirs,
            "postern_delivered_last_24h": ours,
            "unexplained": theirs.saturating_sub(ours),
            "meaning": "the provider counts mail Postern never sent: its credential may be used elsewhere",
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provider_counting_more_than_the_ledger_is_a_finding() {
        let cfg = GuardConfig::default();
        assert!(check("ses", 0, 0, &cfg).is_none());
        assert!(
            check("ses", 1_150, 1_000, &cfg).is_none(),
            "within 10% + 100"
        );
        let f = check("ses", 1_201, 1_000, &cfg).expect("over");
        assert_eq!(f.scope, PauseScope::Provider("ses".into()));
        assert_eq!(f.detail["unexplained"], 201);
        let off = GuardConfig {
            ledger_check: false,
            ..Default::default()
        };
        assert!(check("ses", 1_000_000, 0, &off).is_none());
    }
}
