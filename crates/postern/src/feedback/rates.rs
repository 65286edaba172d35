//! Rolling feedback rates for `/metrics`: bounces, complaints and auto-replies against the
//! recipients handed to a provider, per API key, tenant and provider, over 1 minute,
//! 15 minutes and 24 hours; and orphan feedback (about mail Postern never sent) counted by the
//! sending domain it names. In memory, fed on the hot paths, read at scrape time.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// What is counted per series: recipients sent, then the feedback kinds.
pub const KINDS: [&str; 3] = ["bounce", "complaint", "autoreply"];
const SENT: usize = 0;

/// (label, span in ms); each window keeps 60 slots of span/60.
pub const WINDOWS: [(&str, i64); 3] = [("1m", 60_000), ("15m", 900_000), ("24h", 86_400_000)];
const SLOTS: i64 = 60;
/// Sending domains counted one by one; past this, orphans count under `other`.
const MAX_ORPHAN_DOMAINS: usize = 1_000;

type Counts = [u64; 4];

/// Counts over one window, in 60 slots (oldest first; empty slots are not stored).
#[derive(Default)]
struct Ring {
    slots: VecDeque<(i64, Counts)>,
}

impl Ring {
    fn add(&mut self, slot: i64, i: usize, n: u64) {
        match self.slots.back_mut() {
            Some((s, c)) if *s == slot => c[i] += n,
            _ => {
                let mut c = Counts::default();
                c[i] = n;
                self.slots.push_back((slot, c));
            }
        }
    }

    fn sum(&mut self, slot: i64) -> Counts {
        while self.slots.front().is_some_and(|(s, _)| *s <= slot - SLOTS) {
            self.slots.pop_front();
        }
        let mut out = Counts::default();
        for (_, c) in &self.slots {
            for (o, v) in out.iter_mut().zip(c) {
                *o += v;
            }
        }
        out
    }
}

#[derive(Default)]
struct Series {
    windows: [Ring; 3],
}

impl Series {
    fn add(&mut self, now: i64, i: usize, n: u64) {
        for (ring, (_, span)) in self.windows.iter_mut().zip(WINDOWS) {
            ring.add(now / (span / SLOTS), i, n);
        }
    }
}

#[derive(Default)]
struct State {
    /// (scope, id) → counts; scope is `key`, `tenant` or `provider`.
    series: HashMap<(&'static str, String), Series>,
    /// Sending domains orphan feedback was counted under.
    orphan_domains: HashSet<String>,
}

/// One window of one series, as read at scrape time.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowCounts {
    pub scope: &'static str,
    pub id: String,
    pub window: &'static str,
    pub sent: u64,
    /// Per kind, in the order of [`KINDS`].
    pub feedback: [u64; 3],
}

/// Cheap to clone; clones share the counts.
#[derive(Clone, Default)]
pub struct FeedbackRates(Arc<Mutex<State>>);

impl FeedbackRates {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn scopes<'a>(
        tenant: &'a str,
        key: Option<&'a str>,
        provider: Option<&'a str>,
    ) -> impl Iterator<Item = (&'static str, &'a str)> {
        [
            Some(("tenant", tenant)),
            key.map(|k| ("key", k)),
            provider.filter(|p| !p.is_empty()).map(|p| ("provider", p)),
        ]
        .into_iter()
        .flatten()
    }

    /// `n` recipients handed to `provider` for a message of `tenant` sent with `key`.
    pub fn sent(&self, now: i64, tenant: &str, key: Option<&str>, provider: &str, n: u64) {
        self.count(now, tenant, key, Some(provider), SENT, n);
    }

    /// One piece of feedback (`bounce`, `complaint`, `autoreply`) about a message Postern sent.
    pub fn feedback(
        &self,
        now: i64,
        kind: &str,
        tenant: &str,
        key: Option<&str>,
        provider: Option<&str>,
    ) {
        if let Some(i) = KINDS.iter().position(|k| *k == kind) {
            self.count(now, tenant, key, provider, i + 1, 1);
        }
    }

    fn count(
        &self,
        now: i64,
        tenant: &str,
        key: Option<&str>,
        provider: Option<&str>,
        i: usize,
        n: u64,
    ) {
        self.with(|st| {
            for (scope, id) in Self::scopes(tenant, key, provider) {
                st.series
                    .entry((scope, id.to_owned()))
                    .or_default()
                    .add(now, i, n);
            }
        });
    }

    /// The label orphan feedback claiming to come from `domain` is counted under: the domain,
    /// `unknown` when none is known, `other` once too many domains were seen.
    pub fn orphan_domain(&self, domain: &str) -> String {
        self.with(|st| {
            let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
            if domain.is_empty() {
                "unknown".to_owned()
            } else if st.orphan_domains.contains(&domain) {
                domain
            } else if st.orphan_domains.len() >= MAX_ORPHAN_DOMAINS {
                "other".to_owned()
            } else {
                st.orphan_domains.insert(domain.clone());
                domain
            }
        })
    }

    /// Every window of every series with something in it at `now`; series with nothing left
    /// in their longest window are forgotten.
    pub fn snapshot(&self, now: i64) -> Vec<WindowCounts> {
        self.with(|st| {
            let mut out = Vec::new();
            st.series.retain(|(scope, id), series| {
                let mut any = false;
                for (ring, (window, span)) in series.windows.iter_mut().zip(WINDOWS) {
                    let c = ring.sum(now / (span / SLOTS));
                    if c.iter().any(|v| *v > 0) {
                        any = true;
                        out.push(WindowCounts {
                            scope,
                            id: id.clone(),
                            window,
                            sent: c[SENT],
                            feedback: [c[1], c[2], c[3]],
                        });
                    }
                }
                any
            });
            out
        })
    }
}

/// The rates as Prometheus metrics, registered in the app's registry.
pub struct RateMetrics {
    pub counts: FeedbackRates,
    rate: Family<Labels, Gauge<f64, AtomicU64>>,
    window: Family<Labels, Gauge>,
    orphans: Family<Labels, Counter>,
}

type Labels = Vec<(String, String)>;

impl RateMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let rate = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "postern_feedback_rate",
            "Bounces, complaints or auto-replies (kind) per recipient sent, over a window (1m, 15m, 24h), per key, tenant or provider (scope, id)",
            rate.clone(),
        );
        let window = Family::<Labels, Gauge>::default();
        registry.register(
            "postern_feedback_window",
            "Recipients sent (kind=sent) and feedback by kind over a window, per key, tenant or provider",
            window.clone(),
        );
        let orphans = Family::<Labels, Counter>::default();
        registry.register(
            "postern_feedback_orphans",
            "Feedback about mail Postern never sent, by the sending domain it names and kind",
            orphans.clone(),
        );
        Self {
            counts: FeedbackRates::default(),
            rate,
            window,
            orphans,
        }
    }

    /// Recipients of one attempt that a provider took or refused (delivered or bounced
    /// events), counted as sent; a refusal is also a bounce.
    pub fn attempt(&self, tenant: &str, key: Option<&str>, c: &crate::store::Completion) {
        use crate::domain::EventKind;
        for e in &c.events {
            let Some(provider) = e.provider.as_deref() else {
                continue;
            };
            match e.kind {
                EventKind::Delivered => self.counts.sent(c.at, tenant, key, provider, 1),
                EventKind::Bounced => {
                    self.counts.sent(c.at, tenant, key, provider, 1);
                    self.counts
                        .feedback(c.at, "bounce", tenant, key, Some(provider));
                }
                _ => {}
            }
        }
    }

    /// Feedback that came back: counted against its message's key, tenant and provider, or as
    /// an orphan under the domain it names.
    pub fn applied(&self, a: &crate::feedback::ingest::Applied) {
        let r = &a.record;
        match &r.tenant_id {
            Some(tenant) => self.counts.feedback(
                r.received_at,
                &r.kind,
                tenant,
                a.key_id.as_deref(),
                a.provider.as_deref(),
            ),
            None if r.kind == "delivery" => {}
            None => {
                let domain = self
                    .counts
                    .orphan_domain(a.sender_domain.as_deref().unwrap_or(""));
                self.orphans
                    .get_or_create(&vec![
                        ("domain".into(), domain),
                        ("kind".into(), r.kind.clone()),
                    ])
                    .inc();
            }
        }
    }

    /// Sets the gauges from the windows as they are at `now` (called at scrape time).
    pub fn publish(&self, now: i64) {
        self.rate.clear();
        self.window.clear();
        for w in self.counts.snapshot(now) {
            let labels = |kind: &str| -> Labels {
                vec![
                    ("kind".into(), kind.into()),
                    ("window".into(), w.window.into()),
                    ("scope".into(), w.scope.into()),
                    ("id".into(), w.id.clone()),
                ]
            };
            self.window
                .get_or_create(&labels("sent"))
                .set(i64::try_from(w.sent).unwrap_or(i64::MAX));
            for (kind, n) in KINDS.iter().zip(w.feedback) {
                self.window
                    .get_or_create(&labels(kind))
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
                if w.sent > 0 {
                    self.rate
                        .get_or_create(&labels(kind))
                        .set(n as f64 / w.sent as f64);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(s: &'a [WindowCounts], scope: &str, id: &str, window: &str) -> &'a WindowCounts {
        s.iter()
            .find(|w| w.scope == scope && w.id == id && w.window == window)
            .expect("window present")
    }

    #[test]
    fn windows_slide() {
        let r = FeedbackRates::default();
        let t0 = 1_000_000_000;
        r.sent(t0, "acme", Some("k1"), "ses", 10);
        r.feedback(t0 + 1_000, "bounce", "acme", Some("k1"), Some("ses"));
        r.feedback(t0 + 1_000, "autoreply", "acme", None, None);
        let s = r.snapshot(t0 + 2_000);
        for window in ["1m", "15m", "24h"] {
            let w = find(&s, "tenant", "acme", window);
            assert_eq!((w.sent, w.feedback), (10, [1, 0, 1]), "{window}");
        }
        assert_eq!(find(&s, "key", "k1", "1m").feedback, [1, 0, 0]);
        assert_eq!(find(&s, "provider", "ses", "1m").sent, 10);
        // Two minutes on, the 1-minute window is empty; 25 hours on, everything is forgotten.
        let s = r.snapshot(t0 + 120_000);
        assert!(!s.iter().any(|w| w.window == "1m"));
        assert_eq!(find(&s, "tenant", "acme", "15m").sent, 10);
        assert!(r.snapshot(t0 + 25 * 3_600_000).is_empty());
    }

    #[test]
    fn orphan_domains_are_bounded() {
        let r = FeedbackRates::default();
        assert_eq!(r.orphan_domain("Example.COM."), "example.com");
        assert_eq!(r.orphan_domain(" "), "unknown");
        for i in 1..MAX_ORPHAN_DOMAINS {
            assert_eq!(
                r.orphan_domain(&format!("d{i}.example")),
                format!("d{i}.example")
            );
        }
        assert_eq!(r.orphan_domain("one-too-many.example"), "other");
        assert_eq!(r.orphan_domain("example.com"), "example.com");
    }
}
