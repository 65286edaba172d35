//! Access anomalies per API key, seen where the key is checked (`auth.rs`):
//!
//! - **new_network**: the key used from a network it was never used from (IPv4 /24, IPv6
//!   /64), once it has `access_warmup_uses` (100) uses behind it;
//! - **new_user_agent**: an HTTP User-Agent it never sent, under the same warm-up;
//! - **off_hours**: a use in an hour of the day (UTC) that carried under 0.5% of the key's
//!   uses, once the key has a day and 500 uses of history;
//! - **scope_refused**: three or more refusals in ten minutes for what the key may not do
//!   (a scope it lacks, a network outside its allowlist, a From or recipient domain it may not
//!   use): a stolen key being tried out.
//!
//! A new key has nothing to differ from, so it raises none of these. Each known set is capped
//! (256 networks, 64 agents); a full set stops learning rather than evicting, so an attacker
//! cannot flush the key's history.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde_json::json;

use super::{Finding, Ring, fnv};
use crate::guard::{GuardConfig, PauseScope};

const NETWORKS_CAP: usize = 256;
const AGENTS_CAP: usize = 64;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// A hash of the network (the /24 or /64) an address belongs to, the key it is remembered by
/// (no allocation: this runs on every use).
pub fn network_hash(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            fnv(&[4, o[0], o[1], o[2]])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_hash(IpAddr::V4(v4)),
            None => fnv(&v6.octets()[..8]),
        },
    }
}

/// The network an address belongs to, for "have we seen this before": its /24 or /64.
pub fn network_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => network_of(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

#[derive(Debug, Clone)]
pub struct KeyAccess {
    /// Network hash → when it was first seen.
    networks: HashMap<u64, i64>,
    agents: HashSet<u64>,
    hours: [u32; 24],
    uses: u64,
    first_use: i64,
    refusals: Ring<10>,
}

impl Default for KeyAccess {
    fn default() -> Self {
        Self {
            networks: HashMap::new(),
            agents: HashSet::new(),
            hours: [0; 24],
            uses: 0,
            first_use: 0,
            refusals: Ring::new(60_000),
        }
    }
}

impl KeyAccess {
    /// The networks first seen before `at`: a throttle spares them, so the key's owner keeps
    /// sending from where it always did while a newcomer is slowed down.
    pub fn networks_before(&self, at: i64) -> HashSet<u64> {
        self.networks
            .iter()
            .filter(|(_, first)| **first < at)
            .map(|(h, _)| *h)
            .collect()
    }

    /// A successful use of the key from `ip` with `agent`.
    pub fn used(
        &mut self,
        key: &str,
        now: i64,
        ip: Option<IpAddr>,
        agent: Option<&str>,
        cfg: &GuardConfig,
    ) -> Vec<Finding> {
        let mut out = Vec::new();
        if self.first_use == 0 {
            self.first_use = now;
        }
        let warm = self.uses >= cfg.access_warmup_uses;
        let finding = |signal, value: f64, threshold: f64, window_secs, detail| Finding {
            scope: PauseScope::Key(key.to_owned()),
            signal,
            value,
            threshold,
            window_secs,
            detail,
        };
        if let Some(ip) = ip {
            let h = network_hash(ip);
            if !self.networks.contains_key(&h) {
                if warm {
                    let net = network_of(ip);
                    out.push(finding(
                        "new_network",
                        1.0,
                        0.0,
                        0,
                        json!({"network": net, "ip": ip.to_string(), "known_networks": self.networks.len(), "uses": self.uses}),
                    ));
                }
                if self.networks.len() < NETWORKS_CAP {
                    self.networks.insert(h, now);
                }
            }
        }
        if let Some(a) = agent {
            let h = fnv(a.as_bytes());
            if !self.agents.contains(&h) {
                if warm {
                    let shown: String = a.chars().take(120).collect();
                    out.push(finding(
                        "new_user_agent",
                        1.0,
                        0.0,
                        0,
                        json!({"user_agent": shown, "known_agents": self.agents.len(), "uses": self.uses}),
                    ));
                }
                if self.agents.len() < AGENTS_CAP {
                    self.agents.insert(h);
                }
            }
        }
        let hour = (now.div_euclid(HOUR_MS) % 24) as usize;
        let total: u64 = self.hours.iter().map(|h| u64::from(*h)).sum();
        if total >= 500 && now - self.first_use >= DAY_MS {
            let share = f64::from(self.hours[hour]) / total as f64;
            if share < 0.005 {
                out.push(finding(
                    "off_hours",
                    share,
                    0.005,
                    3600,
                    json!({"hour_utc": hour, "uses_in_hour": self.hours[hour], "uses": total}),
                ));
            }
        }
        self.hours[hour] = self.hours[hour].saturating_add(1);
        self.uses += 1;
        out
    }

    /// The key was refused for something beyond what it may do.
    pub fn refused(&mut self, key: &str, now: i64, why: &str) -> Option<Finding> {
        self.refusals.add(now, 1);
        let n = self.refusals.count(now);
        (n >= 3).then(|| Finding {
            scope: PauseScope::Key(key.to_owned()),
            signal: "scope_refused",
            value: n as f64,
            threshold: 3.0,
            window_secs: self.refusals.span_secs(),
            detail: json!({"refusals": n, "last": why}),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn networks_are_slash_24_and_slash_64() {
        assert_eq!(
            network_of("203.0.113.77".parse().unwrap()),
            "203.0.113.0/24"
        );
        assert_eq!(
            network_of("2001:db8:1:2:3::9".parse().unwrap()),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            network_of("::ffff:198.51.100.3".parse().unwrap()),
            "198.51.100.0/24"
        );
    }

    #[test]
    fn a_new_network_or_agent_counts_only_after_warm_up() {
        let cfg = GuardConfig::default();
        let mut a = KeyAccess::default();
        // Its first uses define it.
        for i in 0..100 {
            let f = a.used(
                "k",
                1_000 + i,
                ip(&format!("10.0.0.{}", i % 4)),
                Some("app/1.0"),
                &cfg,
            );
            assert!(f.is_empty(), "{f:?}");
        }
        assert!(
            a.used("k", 2_000, ip("10.0.0.200"), Some("app/1.0"), &cfg)
                .is_empty(),
            "same /24"
        );
        let f = a.used("k", 2_001, ip("198.51.100.9"), Some("curl/8.0"), &cfg);
        let signals: Vec<_> = f.iter().map(|f| f.signal).collect();
        assert_eq!(signals, ["new_network", "new_user_agent"]);
        assert_eq!(f[0].detail["network"], "198.51.100.0/24");
        assert!(
            a.used("k", 2_002, ip("198.51.100.10"), Some("curl/8.0"), &cfg)
                .is_empty(),
            "now known"
        );
    }

    #[test]
    fn a_use_outside_the_keys_hours_is_noticed() {
        let cfg = GuardConfig::default();
        let mut a = KeyAccess::default();
        let day0 = 100 * DAY_MS;
        // Two days of office hours (09:00-17:00 UTC).
        for d in 0..2 {
            for h in 9..17 {
                for m in 0..40 {
                    let t = day0 + d * DAY_MS + h * HOUR_MS + m * 60_000;
                    assert!(a.used("k", t, ip("10.0.0.1"), None, &cfg).is_empty());
                }
            }
        }
        let f = a.used(
            "k",
            day0 + 2 * DAY_MS + 3 * HOUR_MS,
            ip("10.0.0.1"),
            None,
            &cfg,
        );
        assert_eq!(f.len(), 1);
        assert_eq!(
            (f[0].signal, f[0].detail["hour_utc"].as_u64()),
            ("off_hours", Some(3))
        );
        assert!(
            a.used(
                "k",
                day0 + 2 * DAY_MS + 10 * HOUR_MS,
                ip("10.0.0.1"),
                None,
                &cfg
            )
            .is_empty()
        );
    }

    #[test]
    fn repeated_refusals_are_a_finding() {
        let mut a = KeyAccess::default();
        assert!(a.refused("k", 0, "scope admin").is_none());
        assert!(a.refused("k", 1_000, "scope admin").is_none());
        let f = a.refused("k", 2_000, "network").expect("third");
        assert_eq!(f.signal, "scope_refused");
        assert!(
            a.refused("k", 20 * 60_000, "x").is_none(),
            "the window moved on"
        );
    }
}
