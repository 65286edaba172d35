//! Bounce, complaint and auto-reply rates, per tenant (over the last hour), per key and per
//! provider (over the last 15 minutes: a stolen key's bounces must not be diluted by an hour of
//! its owner's clean mail).
//!
//! - **bounce_rate**: bounced recipients over `bounce_rate` (2%) of those sent, once
//!   `bounce_min_sample` (200) were sent. Amazon SES reviews an account at 5% and may pause it
//!   at 10%; Postern acts well before.
//! - **complaint_rate**: complaints over `complaint_rate` (0.1%), once `complaint_min_sample`
//!   (1,000) were sent (SES: review at 0.1%, pause at 0.5%).
//! - **autoreply_rate**: auto-replies ("out of office", "ticket received") in 15 minutes over
//!   `max(autoreply_floor (20), 5 × the scope's learned count per 15 minutes, autoreply_share
//!   (5%) × the messages sent in the window)`. In the stolen-key
//!   incident ~50 auto-replies in 15 minutes were the first visible sign: mail reaching many
//!   people who never asked for it. Legitimate mail gets some, and its learned count covers that.

use serde_json::json;

use super::{Ewma, Finding, Ring, round4};
use crate::guard::{GuardConfig, PauseScope};

const QUARTER_MS: i64 = 15 * 60_000;

/// The kinds of feedback counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bounce,
    Complaint,
    AutoReply,
}

impl Kind {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "bounce" => Some(Self::Bounce),
            "complaint" => Some(Self::Complaint),
            "autoreply" => Some(Self::AutoReply),
            _ => None,
        }
    }
}

/// Sent and bad counts of one scope.
#[derive(Debug, Clone)]
pub struct Rates {
    sent: Ring<60>,
    bounced: Ring<60>,
    complained: Ring<60>,
    autoreplied: Ring<60>,
    autoreply_learned: Ewma,
}

impl Rates {
    /// A window of 60 buckets of `bucket_ms` (60 s for an hour, 15 s for 15 minutes).
    pub fn new(bucket_ms: i64) -> Self {
        Self {
            sent: Ring::new(bucket_ms),
            bounced: Ring::new(bucket_ms),
            complained: Ring::new(bucket_ms),
            autoreplied: Ring::new(bucket_ms),
            autoreply_learned: Ewma::default(),
        }
    }

    pub fn hourly() -> Self {
        Self::new(60_000)
    }

    pub fn quarter_hourly() -> Self {
        Self::new(15_000)
    }

    pub fn sent(&mut self, now: i64, n: u64) {
        self.sent.add(now, n.min(u64::from(u32::MAX)) as u32);
        self.autoreply_learned.add(now, QUARTER_MS, 0.2, 0);
    }

    /// `n` pieces of feedback of `kind`; a finding when the scope's rate is over its trigger.
    pub fn bad(
        &mut self,
        scope: PauseScope,
        now: i64,
        kind: Kind,
        n: u64,
        cfg: &GuardConfig,
    ) -> Option<Finding> {
        let n32 = n.min(u64::from(u32::MAX)) as u32;
        let sent = self.sent.count(now);
        let window_secs = self.sent.span_secs();
        let (signal, count, rate, sample) = match kind {
            Kind::Bounce => {
                self.bounced.add(now, n32);
                (
                    "bounce_rate",
                    self.bounced.count(now),
                    cfg.bounce_rate,
                    cfg.bounce_min_sample,
                )
            }
            Kind::Complaint => {
                self.complained.add(now, n32);
                (
                    "complaint_rate",
                    self.complained.count(now),
                    cfg.complaint_rate,
                    cfg.complaint_min_sample,
                )
            }
            Kind::AutoReply => {
                self.autoreplied.add(now, n32);
                self.autoreply_learned.add(now, QUARTER_MS, 0.2, n);
                let count = self.autoreplied.count(now);
                let learned =
                    (self.autoreply_learned.periods >= 4).then_some(self.autoreply_learned.value);
                // Proportional too: a large announced send brings its share of "out of office"
                // answers; a count alone would call every big newsletter an attack.
                let limit = learned
                    .map_or(0.0, |l| 5.0 * l)
                    .max(cfg.autoreply_floor as f64)
                    .max(cfg.autoreply_share * sent as f64);
                if count as f64 <= limit {
                    return None;
                }
                return Some(Finding {
                    scope,
                    signal: "autoreply_rate",
                    value: count as f64,
                    threshold: limit.round(),
                    window_secs,
                    detail: json!({
                        "autoreplies": count,
                        "sent": sent,
                        "learned_per_window": learned.map(round4),
                    }),
                });
            }
        };
        if sent < sample || count as f64 <= rate * sent as f64 {
            return None;
        }
        Some(Finding {
            scope,
            signal,
            value: count as f64 / sent as f64,
            threshold: rate,
            window_secs,
            detail: json!({ "count": count, "sent": sent, "min_sample": sample }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> PauseScope {
        PauseScope::Tenant("t".into())
    }

    #[test]
    fn bounce_rate_needs_its_sample_then_trips() {
        let cfg = GuardConfig {
            bounce_min_sample: 100,
            ..Default::default()
        };
        let mut r = Rates::hourly();
        r.sent(1_000_000, 50);
        assert!(r.bad(tenant(), 1_000_000, Kind::Bounce, 10, &cfg).is_none());
        r.sent(1_000_000, 150);
        let f = r
            .bad(tenant(), 1_000_001, Kind::Bounce, 1, &cfg)
            .expect("11 of 200");
        assert_eq!((f.signal, f.window_secs), ("bounce_rate", 3600));
        assert_eq!(f.detail["count"], 11);
        // An hour later the window is empty again.
        assert!(
            r.bad(tenant(), 1_000_000 + 3_700_000, Kind::Bounce, 1, &cfg)
                .is_none()
        );
    }

    #[test]
    fn a_keys_bounces_count_over_fifteen_minutes() {
        let cfg = GuardConfig::default();
        let mut r = Rates::quarter_hourly();
        let key = PauseScope::Key("k".into());
        // An hour of clean mail has left the 15-minute window.
        r.sent(0, 10_000);
        r.sent(3_600_000, 300);
        let f = r.bad(key, 3_600_001, Kind::Bounce, 90, &cfg).expect("30%");
        assert_eq!(f.window_secs, 900);
        assert!((f.value - 0.3).abs() < 1e-9);
    }

    #[test]
    fn complaints_use_their_own_rate_and_sample() {
        let cfg = GuardConfig::default();
        let mut r = Rates::hourly();
        r.sent(1_000, 999);
        assert!(r.bad(tenant(), 1_000, Kind::Complaint, 5, &cfg).is_none());
        r.sent(1_000, 1);
        let f = r
            .bad(tenant(), 1_000, Kind::Complaint, 0, &cfg)
            .expect("5 in 1000");
        assert_eq!(f.signal, "complaint_rate");
    }

    #[test]
    fn autoreplies_over_the_floor_or_the_learned_count() {
        let cfg = GuardConfig::default();
        let mut r = Rates::quarter_hourly();
        let t0 = 100 * QUARTER_MS;
        // Five quarters with 10 auto-replies each: learned ~10, the limit max(20, 50).
        for q in 0..5 {
            for i in 0..10 {
                assert!(
                    r.bad(tenant(), t0 + q * QUARTER_MS + i, Kind::AutoReply, 1, &cfg)
                        .is_none()
                );
            }
        }
        let t1 = t0 + 5 * QUARTER_MS;
        r.sent(t1, 0);
        let n = (0..100)
            .position(|i| r.bad(tenant(), t1 + i, Kind::AutoReply, 1, &cfg).is_some())
            .expect("no finding");
        assert!((30..=60).contains(&n), "{n}");
        // A fresh scope trips at the floor.
        let mut fresh = Rates::quarter_hourly();
        let n = (0..100)
            .position(|i| {
                fresh
                    .bad(tenant(), t1 + i, Kind::AutoReply, 1, &cfg)
                    .is_some()
            })
            .expect("no finding");
        assert_eq!(n, 20, "the 21st is over 20");
    }
}
