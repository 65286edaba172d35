//! Volume per API key against the key's own learned rate and time of day, on two windows:
//!
//! - **one second** (ten 100 ms buckets): catches a burst within tens of messages. A stolen key
//!   sending 500 msg/s where its owner sends ~5 msg/s crosses `max(burst_floor_per_second = 50,
//!   volume_factor (10) × learned per-second rate)` after ~50 messages, i.e. in ~0.1 s;
//! - **one minute** (sixty 1 s buckets): `max(volume_floor_per_minute = 3000, volume_factor ×
//!   learned per-minute rate)`, the slower, steadier view.
//!
//! The learned rate is an EWMA of the key's per-minute counts (idle minutes count as zero) and,
//! once an hour of the day has been seen on two days, that hour's own rate: a key quiet at
//! night is judged against its night. Until `warmup_minutes` of history exist only the floors
//! apply, so a new key (a tenant onboarding) is judged by the floors alone. A volume finding
//! alone never holds with the default policy (score 1.5 of 3): an announced newsletter or a
//! backlog flushed after an outage is loud but otherwise ordinary; it takes a second,
//! independent signal (novel recipients, a new network, bounces) to hold.

use serde_json::json;

use super::{Ewma, Finding, Ring, round4};
use crate::guard::{GuardConfig, PauseScope};

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 3_600_000;
/// Weight of the newest minute in the learned rate.
const ALPHA: f64 = 0.2;
/// Weight of the newest day in an hour-of-day rate.
const TOD_ALPHA: f32 = 0.3;

#[derive(Debug, Clone)]
pub struct KeyVolume {
    second: Ring<10>,
    minute: Ring<60>,
    per_minute: Ewma,
    /// Messages per hour for each hour of the day (UTC), learned across days.
    tod: [f32; 24],
    tod_days: [u8; 24],
    hour: i64,
    hour_count: u32,
}

impl Default for KeyVolume {
    fn default() -> Self {
        Self {
            second: Ring::new(100),
            minute: Ring::new(1_000),
            per_minute: Ewma::default(),
            tod: [0.0; 24],
            tod_days: [0; 24],
            hour: 0,
            hour_count: 0,
        }
    }
}

impl KeyVolume {
    /// The learned per-minute rate for this moment, once warmed up.
    pub fn learned_per_minute(&self, now: i64, warmup_minutes: u32) -> Option<f64> {
        if self.per_minute.periods < warmup_minutes {
            return None;
        }
        let h = (now.div_euclid(HOUR_MS) % 24) as usize;
        Some(if self.tod_days[h] >= 2 {
            f64::from(self.tod[h]) / 60.0
        } else {
            self.per_minute.value
        })
    }

    /// Counts one message of key `key`; a finding when a window is over its limit.
    pub fn observe(&mut self, key: &str, now: i64, cfg: &GuardConfig) -> Option<Finding> {
        self.per_minute.add(now, MINUTE_MS, ALPHA, 1);
        let hour = now.div_euclid(HOUR_MS);
        if hour != self.hour {
            if self.hour != 0 {
                let h = (self.hour % 24) as usize;
                let c = self.hour_count as f32;
                self.tod[h] = if self.tod_days[h] == 0 {
                    c
                } else {
                    self.tod[h] * (1.0 - TOD_ALPHA) + TOD_ALPHA * c
                };
                self.tod_days[h] = self.tod_days[h].saturating_add(1);
            }
            self.hour = hour;
            self.hour_count = 0;
        }
        self.hour_count = self.hour_count.saturating_add(1);
        self.second.add(now, 1);
        self.minute.add(now, 1);
        let learned = self.learned_per_minute(now, cfg.warmup_minutes);
        let factor = cfg.volume_factor;
        // An announced send raises both ceilings: its rate per minute, and that rate spread
        // over the minute (times the factor, as bursts within a minute are normal) per second.
        let planned = crate::guard::planned::ceiling(&cfg.planned, key, now).unwrap_or(0) as f64;
        let in_second = self.second.count(now) as f64;
        let second_limit = learned
            .map_or(0.0, |r| r / 60.0 * factor)
            .max(cfg.burst_floor_per_second as f64)
            .max(planned / 60.0 * factor);
        let in_minute = self.minute.count(now) as f64;
        let minute_limit = learned
            .map_or(0.0, |r| r * factor)
            .max(cfg.volume_floor_per_minute as f64)
            .max(planned);
        let (value, threshold, window_secs) = if in_second > second_limit {
            (in_second, second_limit, self.second.span_secs())
        } else if in_minute > minute_limit {
            (in_minute, minute_limit, self.minute.span_secs())
        } else {
            return None;
        };
        Some(Finding {
            scope: PauseScope::Key(key.to_owned()),
            signal: "volume",
            value,
            threshold: threshold.round(),
            window_secs,
            detail: json!({
                "messages_last_second": in_second,
                "messages_last_minute": in_minute,
                "learned_per_minute": learned.map(round4),
                "floor_per_second": cfg.burst_floor_per_second,
                "floor_per_minute": cfg.volume_floor_per_minute,
                "factor": factor,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GuardConfig {
        GuardConfig {
            warmup_minutes: 5,
            ..Default::default()
        }
    }

    /// `per_sec` messages a second, evenly, for `secs` seconds from `start`; returns the first
    /// finding and how many messages it took.
    fn run(
        v: &mut KeyVolume,
        start: i64,
        per_sec: u32,
        secs: u32,
        cfg: &GuardConfig,
    ) -> Option<(u32, Finding)> {
        let step = 1000 / i64::from(per_sec);
        for i in 0..per_sec * secs {
            if let Some(f) = v.observe("k", start + i64::from(i) * step, cfg) {
                return Some((i + 1, f));
            }
        }
        None
    }

    #[test]
    fn a_burst_far_over_the_learned_rate_is_seen_within_a_second_window() {
        let c = cfg();
        let mut v = KeyVolume::default();
        let t0 = 10 * HOUR_MS;
        assert!(run(&mut v, t0, 5, 600, &c).is_none(), "ten minutes at 5/s");
        let learned = v
            .learned_per_minute(t0 + 600_000, c.warmup_minutes)
            .unwrap();
        assert!((250.0..350.0).contains(&learned), "{learned}");
        let (n, f) = run(&mut v, t0 + 600_000, 500, 5, &c).expect("no finding");
        assert!(n <= 60, "took {n} messages");
        assert_eq!((f.signal, f.window_secs), ("volume", 1));
        assert_eq!(f.threshold, 50.0);
    }

    #[test]
    fn a_new_key_is_judged_by_the_floors_only() {
        let c = cfg();
        let mut v = KeyVolume::default();
        assert!(
            run(&mut v, HOUR_MS, 40, 60, &c).is_none(),
            "40/s is under the floor"
        );
        let (_, f) = run(&mut v, HOUR_MS + 60_000, 100, 2, &c).expect("over the floor");
        assert_eq!(f.detail["learned_per_minute"], serde_json::Value::Null);
    }

    #[test]
    fn the_minute_window_catches_a_steady_rise_the_second_window_misses() {
        let c = GuardConfig {
            warmup_minutes: 5,
            volume_factor: 3.0,
            volume_floor_per_minute: 1_000,
            ..Default::default()
        };
        let mut v = KeyVolume::default();
        let t0 = 10 * HOUR_MS;
        assert!(run(&mut v, t0, 10, 600, &c).is_none());
        // 40/s: under the 50/s floor of the second window, over 3 × 600/min.
        let (n, f) = run(&mut v, t0 + 600_000, 40, 60, &c).expect("no finding");
        assert_eq!(f.window_secs, 60);
        assert!(n > 1_000, "{n}: not within the first seconds");
    }

    #[test]
    fn time_of_day_baseline_is_used_once_learned() {
        let c = cfg();
        let mut v = KeyVolume::default();
        // Two days: busy at 10:00 (10/s for an hour is not simulated message by message;
        // a few minutes stand for it), quiet at 03:00.
        for day in 0..3 {
            let d = 100 * 24 * HOUR_MS + day * 24 * HOUR_MS;
            assert!(run(&mut v, d + 3 * HOUR_MS, 1, 60, &c).is_none());
            assert!(run(&mut v, d + 10 * HOUR_MS, 10, 300, &c).is_none());
        }
        let night = 103 * 24 * HOUR_MS + 3 * HOUR_MS;
        let day = 103 * 24 * HOUR_MS + 10 * HOUR_MS;
        let at_night = v.learned_per_minute(night, c.warmup_minutes).unwrap();
        let by_day = v.learned_per_minute(day, c.warmup_minutes).unwrap();
        assert!(at_night < by_day, "{at_night} vs {by_day}");
        assert!(at_night < 2.0, "{at_night}");
    }
}
