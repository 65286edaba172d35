//! The detector's signals. Each module keeps the state of one family of signals per scope (API
//! key, tenant, provider) and turns observations into [`Finding`]s; the policy
//! (`guard/policy.rs`) scores findings per scope and decides the action. Everything here runs
//! on the hot path under the detector's one lock: fixed-size rings, no allocation per message
//! once a key is known, no store access.

pub mod access;
pub mod content;
pub mod feedback;
pub mod ledger;
pub mod novelty;
pub mod volume;

use serde_json::Value;

use crate::guard::PauseScope;

/// One signal over its threshold: what, where, by how much, over which window.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub scope: PauseScope,
    /// The signal's name, as in `[guard.policy.scores]`.
    pub signal: &'static str,
    pub value: f64,
    pub threshold: f64,
    pub window_secs: u64,
    /// Further figures (samples, learned baseline, the network or agent seen).
    pub detail: Value,
}

impl Finding {
    /// The evidence as stored with an alert.
    pub fn evidence(&self) -> Value {
        let mut v = serde_json::json!({
            "signal": self.signal,
            "value": round4(self.value),
            "threshold": round4(self.threshold),
            "window_secs": self.window_secs,
        });
        if let (Some(o), Value::Object(d)) = (v.as_object_mut(), &self.detail) {
            for (k, x) in d {
                o.insert(k.clone(), x.clone());
            }
        }
        v
    }
}

pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Counts in a sliding window of `N` equal buckets of `width_ms` each: O(1) per add, fixed
/// memory. The window covers the current bucket and the `N - 1` before it.
#[derive(Debug, Clone)]
pub struct Ring<const N: usize> {
    counts: [u32; N],
    /// Index (time / width) of the newest bucket.
    head: i64,
    total: u64,
    width_ms: i64,
}

impl<const N: usize> Ring<N> {
    pub fn new(width_ms: i64) -> Self {
        Self {
            counts: [0; N],
            head: 0,
            total: 0,
            width_ms,
        }
    }

    fn advance(&mut self, now: i64) {
        let idx = now.div_euclid(self.width_ms);
        if idx <= self.head {
            return;
        }
        let gap = (idx - self.head).min(N as i64);
        for i in 1..=gap {
            let slot = (self.head + i).rem_euclid(N as i64) as usize;
            self.total -= u64::from(self.counts[slot]);
            self.counts[slot] = 0;
        }
        self.head = idx;
    }

    pub fn add(&mut self, now: i64, n: u32) {
        self.advance(now);
        let slot = self.head.rem_euclid(N as i64) as usize;
        self.counts[slot] = self.counts[slot].saturating_add(n);
        self.total += u64::from(n);
    }

    pub fn count(&mut self, now: i64) -> u64 {
        self.advance(now);
        self.total
    }

    pub fn span_secs(&self) -> u64 {
        (self.width_ms * N as i64 / 1000) as u64
    }
}

/// An exponentially weighted average of per-period counts (periods with nothing count as
/// zero), with the number of periods it has seen, for warm-up.
#[derive(Debug, Clone, Default)]
pub struct Ewma {
    pub value: f64,
    pub periods: u32,
    period: i64,
    current: u64,
}

impl Ewma {
    /// Adds `n` at `now`; closes the periods that ended since the last call.
    pub fn add(&mut self, now: i64, period_ms: i64, alpha: f64, n: u64) {
        let p = now.div_euclid(period_ms);
        if p != self.period {
            if self.period != 0 {
                let idle = (p - self.period - 1).clamp(0, 240) as i32;
                self.value =
                    self.value * (1.0 - alpha).powi(idle + 1) + alpha * self.current as f64;
                self.periods = self.periods.saturating_add(1 + idle as u32);
            }
            self.period = p;
            self.current = 0;
        }
        self.current += n;
    }
}

/// FNV-1a, 64-bit: fast on the short strings hashed here (addresses, domains, words) and the
/// same on every node and run, so what the store rebuilds matches what was learned.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// FNV-1a of the ASCII-lowercased bytes (addresses compare case-insensitively).
pub fn fnv_lower(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b.to_ascii_lowercase());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The domain part of an address (after the last `@`).
pub fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_counts_only_its_window() {
        let mut r: Ring<10> = Ring::new(100);
        r.add(1_000, 5);
        r.add(1_050, 1);
        assert_eq!(r.count(1_099), 6);
        r.add(1_900, 2);
        assert_eq!(r.count(1_950), 8, "still within 1 s");
        assert_eq!(r.count(2_000), 2, "the first bucket left the window");
        assert_eq!(r.count(5_000), 0, "a long gap clears everything");
        assert_eq!(r.span_secs(), 1);
    }

    #[test]
    fn ewma_learns_and_decays_over_idle_periods() {
        let mut e = Ewma::default();
        for p in 1..=20 {
            e.add(p * 1000, 1000, 0.2, 10);
        }
        e.add(21_000, 1000, 0.2, 0);
        assert!((e.value - 10.0).abs() < 0.2, "{}", e.value);
        assert_eq!(e.periods, 20);
        e.add(31_000, 1000, 0.2, 0);
        assert!(e.value < 2.0, "ten idle periods: {}", e.value);
    }
}
