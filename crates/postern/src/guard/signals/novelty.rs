//! Recipient novelty and domain spread.
//!
//! Each tenant remembers whom it has mailed: recipients in a Bloom filter (2^21 bits, 256 KiB,
//! three probes: ~1.5% false "known" at 200,000 addresses, so a very large tenant loses a
//! little sensitivity, never gains false alarms) and recipient domains in a hashed set capped
//! at 50,000. The memory is rebuilt from the store at start (`Store::recent_recipients`).
//!
//! Each key keeps its last 100 recipients' novelty as bits and their domains as hashes:
//! - **novelty**: the share of those recipients the tenant had never mailed, over
//!   `max(novelty_share (0.6), learned share + 0.3)`; the learned share is a slow average of the
//!   key's own (a signup flow mails new people all day);
//! - **domain spread**: the share of new domains over `max(new_domain_share (0.3), learned +
//!   0.2)`, or the distinct domains among the last 100 recipients over
//!   `max(spread_floor (60), 2 × learned)` while half that share of domains is new —
//!   purchased lists span many small domains; real users sit mostly at a few large ones, and
//!   a B2B newsletter's many domains are known ones.
//!
//! Neither counts until the tenant knows `novelty_min_known` recipients and the key has sent
//! `novelty_min_sample` recipients: a tenant onboarding mails only new people, and that is not
//! an attack.

use std::collections::{HashMap, HashSet};

use serde_json::json;

use super::{Finding, domain_of, fnv_lower, round4};
use crate::guard::{GuardConfig, PauseScope};

const BLOOM_BITS: usize = 1 << 21;
const DOMAIN_CAP: usize = 50_000;
const RING: usize = 100;
/// Weight of each recipient in the learned shares (~1,000 recipients of memory).
const ALPHA: f64 = 0.001;

/// What one tenant has mailed before.
pub struct TenantMemory {
    bits: Vec<u64>,
    domains: HashSet<u64>,
    pub known: u64,
}

impl Default for TenantMemory {
    fn default() -> Self {
        Self {
            bits: vec![0; BLOOM_BITS / 64],
            domains: HashSet::new(),
            known: 0,
        }
    }
}

impl TenantMemory {
    fn probes(h: u64) -> [usize; 3] {
        // Kirsch–Mitzenmacher: three probes from two halves of one hash.
        let (a, b) = (h as u32 as u64, (h >> 32) | 1);
        [0, 1, 2].map(|i| (a.wrapping_add(i * b) as usize) % BLOOM_BITS)
    }

    /// Remembers `address`; whether it and its domain were new.
    pub fn remember(&mut self, address: &str) -> (bool, bool) {
        let h = fnv_lower(address);
        let mut new = false;
        for p in Self::probes(h) {
            let (w, b) = (p / 64, 1u64 << (p % 64));
            if self.bits[w] & b == 0 {
                new = true;
                self.bits[w] |= b;
            }
        }
        if new {
            self.known += 1;
        }
        let d = fnv_lower(domain_of(address));
        let new_domain = if self.domains.len() < DOMAIN_CAP {
            self.domains.insert(d)
        } else {
            !self.domains.contains(&d)
        };
        (new, new_domain)
    }
}

/// A key's recent recipients.
#[derive(Debug, Clone)]
pub struct KeyNovelty {
    novel: u128,
    novel_domain: u128,
    domains: [u64; RING],
    counts: HashMap<u64, u16>,
    next: usize,
    filled: usize,
    seen: u64,
    learned_novel: f64,
    learned_new_domains: f64,
    learned_spread: f64,
}

impl Default for KeyNovelty {
    fn default() -> Self {
        Self {
            novel: 0,
            novel_domain: 0,
            domains: [0; RING],
            counts: HashMap::new(),
            next: 0,
            filled: 0,
            seen: 0,
            learned_novel: 0.0,
            learned_new_domains: 0.0,
            learned_spread: 0.0,
        }
    }
}

impl KeyNovelty {
    fn push(&mut self, novel: bool, novel_domain: bool, domain: u64) {
        let i = self.next;
        let bit = 1u128 << i;
        self.novel = (self.novel & !bit) | if novel { bit } else { 0 };
        self.novel_domain = (self.novel_domain & !bit) | if novel_domain { bit } else { 0 };
        if self.filled == RING {
            let old = self.domains[i];
            if let Some(c) = self.counts.get_mut(&old) {
                *c -= 1;
                if *c == 0 {
                    self.counts.remove(&old);
                }
            }
        } else {
            self.filled += 1;
        }
        self.domains[i] = domain;
        *self.counts.entry(domain).or_default() += 1;
        self.next = (i + 1) % RING;
        self.seen += 1;
    }

    /// Distinct domains among the key's recent recipients.
    pub fn distinct_domains(&self) -> usize {
        self.counts.len()
    }

    /// Records a message's recipients (remembering them for the tenant); a finding when the
    /// key's recent recipients are far more novel or spread than it usually sends to.
    pub fn observe(
        &mut self,
        key: &str,
        tenant: &mut TenantMemory,
        recipients: &[String],
        cfg: &GuardConfig,
    ) -> Vec<Finding> {
        let known_before = tenant.known;
        for r in recipients {
            let (n, nd) = tenant.remember(r);
            self.push(n, nd, fnv_lower(domain_of(r)));
        }
        let filled = self.filled.max(1) as f64;
        let novel = f64::from(self.novel.count_ones()) / filled;
        let new_domains = f64::from(self.novel_domain.count_ones()) / filled;
        let spread = self.counts.len() as f64;
        let warm = self.seen >= cfg.novelty_min_sample;
        let judged = warm && known_before >= cfg.novelty_min_known && self.filled >= RING / 2;
        let novel_limit = cfg.novelty_share.max(self.learned_novel + 0.3);
        let domain_limit = cfg.new_domain_share.max(self.learned_new_domains + 0.2);
        let spread_limit = (cfg.spread_floor as f64).max(2.0 * self.learned_spread);
        let n = recipients.len().max(1) as f64;
        let a = 1.0 - (1.0 - ALPHA).powf(n);
        let learn = |l: &mut f64, x: f64| *l = if warm { *l + a * (x - *l) } else { x };
        learn(&mut self.learned_novel, novel);
        learn(&mut self.learned_new_domains, new_domains);
        if self.filled == RING {
            learn(&mut self.learned_spread, spread);
        }
        if !judged {
            return Vec::new();
        }
        let novel_hit = novel > novel_limit;
        let domain_hit = new_domains > domain_limit;
        let spread_hit = !domain_hit
            && self.filled == RING
            && spread > spread_limit
            && new_domains > domain_limit / 2.0;
        if !(novel_hit || domain_hit || spread_hit) {
            return Vec::new();
        }
        let detail = json!({
            "recent_recipients": self.filled,
            "novel_share": round4(novel),
            "new_domain_share": round4(new_domains),
            "distinct_domains": self.counts.len(),
            "learned_novel_share": round4(self.learned_novel),
            "tenant_known_recipients": known_before,
        });
        let finding = |signal, value, threshold| Finding {
            scope: PauseScope::Key(key.to_owned()),
            signal,
            value,
            threshold,
            window_secs: 0,
            detail: detail.clone(),
        };
        let mut out = Vec::new();
        if novel_hit {
            out.push(finding("novelty", novel, novel_limit));
        }
        if domain_hit {
            out.push(finding("domain_spread", new_domains, domain_limit));
        } else if spread_hit {
            // Many distinct domains alone describe a B2B newsletter as well; it takes some of
            // them being new to the tenant.
            out.push(finding("domain_spread", spread, spread_limit));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GuardConfig {
        GuardConfig {
            novelty_min_known: 200,
            novelty_min_sample: 200,
            ..Default::default()
        }
    }

    /// Feeds one recipient per message; the first findings and how many messages it took.
    fn feed(
        k: &mut KeyNovelty,
        t: &mut TenantMemory,
        addrs: impl Iterator<Item = String>,
    ) -> Option<(usize, Vec<Finding>)> {
        let c = cfg();
        for (i, a) in addrs.enumerate() {
            let f = k.observe("k", t, &[a], &c);
            if !f.is_empty() {
                return Some((i + 1, f));
            }
        }
        None
    }

    /// Customers of a SaaS: 500 people at a handful of big providers, mailed again and again.
    fn customers(n: usize) -> impl Iterator<Item = String> {
        let domains = ["gmail.com", "outlook.com", "yahoo.com", "corp.example"];
        (0..n).map(move |i| format!("user{}@{}", i % 500, domains[i % 4]))
    }

    #[test]
    fn purchased_lists_are_novel_for_an_established_key() {
        let (mut k, mut t) = (KeyNovelty::default(), TenantMemory::default());
        assert!(feed(&mut k, &mut t, customers(2_000)).is_none());
        let list = (0..1_000).map(|i| format!("lead{i}@shop{}.example", i % 300));
        let (n, f) = feed(&mut k, &mut t, list).expect("no finding");
        assert!(n <= 40, "{n} messages");
        assert_eq!(f[0].signal, "domain_spread", "{f:?}");
        assert!(f[0].value > 0.3);
        // Twenty more and most recent recipients are new to the tenant.
        let c = cfg();
        let novel_at = (1_000..1_100).position(|i| {
            let f = k.observe(
                "k",
                &mut t,
                &[format!("lead{i}@shop{}.example", i % 300)],
                &c,
            );
            f.iter().any(|f| f.signal == "novelty")
        });
        assert!(novel_at.is_some_and(|m| n + m < 70), "{n} + {novel_at:?}");
    }

    #[test]
    fn a_new_tenant_mailing_only_new_people_is_not_judged() {
        let (mut k, mut t) = (KeyNovelty::default(), TenantMemory::default());
        let list = (0..5_000).map(|i| format!("member{i}@club{}.example", i % 700));
        assert!(feed(&mut k, &mut t, list).is_none());
    }

    #[test]
    fn a_key_that_always_mails_new_people_learns_it() {
        let (mut k, mut t) = (KeyNovelty::default(), TenantMemory::default());
        // Signups: every address new, at the big providers.
        let signups = (0..3_000).map(|i| format!("new{i}@{}", ["gmail.com", "outlook.com"][i % 2]));
        assert!(feed(&mut k, &mut t, signups).is_none());
        assert!(k.learned_novel > 0.9, "{}", k.learned_novel);
    }

    #[test]
    fn a_newsletter_to_known_business_addresses_is_not_spread() {
        let (mut k, mut t) = (KeyNovelty::default(), TenantMemory::default());
        // Last month: 2,000 subscribers, each at their own company.
        for i in 0..2_000 {
            t.remember(&format!("ceo@company{i}.example"));
        }
        assert!(feed(&mut k, &mut t, customers(1_000)).is_none());
        let issue = (0..2_000).map(|i| format!("ceo@company{i}.example"));
        assert!(feed(&mut k, &mut t, issue).is_none());
    }

    #[test]
    fn the_bloom_filter_remembers_and_counts() {
        let mut t = TenantMemory::default();
        assert_eq!(t.remember("Bob@Example.org"), (true, true));
        assert_eq!(t.remember("bob@example.org"), (false, false));
        assert_eq!(t.remember("eve@example.org"), (true, false));
        assert_eq!(t.known, 2);
    }
}
