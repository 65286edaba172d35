//! What one API key may do beyond its scopes: which `From` and recipient domains, from which
//! networks, how fast and how much per day. Empty lists mean no restriction.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyPolicy {
    /// Domains the `From` (envelope and header) may use; `*.example.com` covers subdomains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub from_domains: Vec<String>,
    /// Domains recipients may be at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rcpt_domains: Vec<String>,
    /// Messages per second (a one-second burst is allowed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<f64>,
    /// Messages per UTC day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daily_limit: Option<u64>,
    /// Networks the key may be used from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_ips: Vec<IpNet>,
}

/// Whether `domain` is one of `allowed` (exactly, or under a `*.` entry).
fn domain_allowed(allowed: &[String], domain: &str) -> bool {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    allowed.iter().any(|a| match a.strip_prefix("*.") {
        Some(base) => d == base || d.ends_with(&format!(".{base}")),
        None => d == *a,
    })
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

impl KeyPolicy {
    pub fn allows_ip(&self, ip: Option<IpAddr>) -> bool {
        self.allow_ips.is_empty()
            || ip.is_some_and(|ip| {
                let ip = match ip {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
                    v4 => v4,
                };
                self.allow_ips.iter().any(|n| n.contains(&ip))
            })
    }

    pub fn allows_from(&self, address: &str) -> bool {
        self.from_domains.is_empty() || domain_allowed(&self.from_domains, domain_of(address))
    }

    pub fn allows_rcpt(&self, address: &str) -> bool {
        self.rcpt_domains.is_empty() || domain_allowed(&self.rcpt_domains, domain_of(address))
    }

    /// Lowercases domains and checks them; the CLI calls this before storing a policy.
    pub fn normalized(mut self) -> Result<Self, String> {
        for list in [&mut self.from_domains, &mut self.rcpt_domains] {
            for d in list.iter_mut() {
                *d = d.trim().trim_end_matches('.').to_ascii_lowercase();
                let bare = d.strip_prefix("*.").unwrap_or(d);
                let ok = !bare.is_empty()
                    && bare.contains('.')
                    && bare
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
                if !ok {
                    return Err(format!(
                        "{d:?} is not a domain (example.com or *.example.com)"
                    ));
                }
            }
        }
        if self
            .rate_per_sec
            .is_some_and(|r| !(r > 0.0 && r.is_finite()))
        {
            return Err("the rate must be a positive number of messages per second".into());
        }
        if self.daily_limit == Some(0) {
            return Err("the daily limit must be at least 1".into());
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_networks_and_defaults() {
        let open = KeyPolicy::default();
        assert!(open.allows_from("a@anything.org") && open.allows_ip(None));
        let p = KeyPolicy {
            from_domains: vec!["example.com".into(), "*.mail.example.net".into()],
            rcpt_domains: vec!["customers.example".into()],
            allow_ips: vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            ..Default::default()
        };
        assert!(p.allows_from("app@Example.COM"));
        assert!(!p.allows_from("app@evil.example.com"));
        assert!(p.allows_from("a@x.mail.example.net") && p.allows_from("a@mail.example.net"));
        assert!(!p.allows_from("a@notmail.example.net"));
        assert!(p.allows_rcpt("bob@customers.example") && !p.allows_rcpt("bob@gmail.com"));
        assert!(p.allows_ip(Some("10.1.2.3".parse().unwrap())));
        assert!(p.allows_ip(Some("::ffff:10.1.2.3".parse().unwrap())));
        assert!(p.allows_ip(Some("::1".parse().unwrap())));
        assert!(!p.allows_ip(Some("192.168.1.1".parse().unwrap())));
        assert!(!p.allows_ip(None));
    }

    #[test]
    fn normalizing_refuses_nonsense() {
        let bad = |from: &str| {
            KeyPolicy {
                from_domains: vec![from.into()],
                ..Default::default()
            }
            .normalized()
        };
        assert_eq!(bad(" Example.COM. ").unwrap().from_domains, ["example.com"]);
        assert!(bad("localhost").is_err());
        assert!(bad("exa mple.com").is_err());
        assert!(bad("*.").is_err());
        let rate = KeyPolicy {
            rate_per_sec: Some(0.0),
            ..Default::default()
        }
        .normalized();
        assert!(rate.is_err());
    }
}
