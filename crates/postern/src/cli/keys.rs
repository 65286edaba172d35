//! API key options: scopes, limits, expiry, and the parsing they need.

use super::*;

/// send: email; sms; social: posts; read: message status; admin: everything.
pub(super) const SCOPES: &[&str] = &["send", "sms", "social", "read", "admin"];

#[derive(clap::Args, Debug)]
pub(super) struct KeyLimitArgs {
    /// Allowed From domains, comma-separated (*.example.com covers subdomains)
    #[arg(long)]
    from_domain: Option<String>,
    /// Allowed recipient domains, comma-separated
    #[arg(long)]
    rcpt_domain: Option<String>,
    /// Rate limit: N or N/s (messages per second)
    #[arg(long)]
    rate: Option<String>,
    /// Messages per UTC day
    #[arg(long)]
    daily: Option<u64>,
    /// Networks the key may be used from, comma-separated CIDRs (10.0.0.0/8,2001:db8::/32)
    #[arg(long)]
    allow_ip: Option<String>,
    /// Expiry: a duration from now (90d, 12h) or an RFC 3339 time
    #[arg(long)]
    expires: Option<String>,
}

pub(super) fn list_arg(s: &Option<String>) -> Vec<String> {
    s.as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `90d`, `12h`, `30m`, `45s` → milliseconds.
pub(super) fn parse_duration_ms(s: &str) -> anyhow::Result<i64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("{s:?} is not a duration (like 90d, 12h, 30m)"))?;
    let unit_ms = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        "s" => 1_000,
        _ => bail!("{s:?} is not a duration (like 90d, 12h, 30m)"),
    };
    n.checked_mul(unit_ms)
        .filter(|ms| *ms > 0)
        .ok_or_else(|| anyhow::anyhow!("{s:?} is not a positive duration"))
}

/// An RFC 3339 time in milliseconds since the epoch.
pub(super) fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

impl KeyLimitArgs {
    pub(super) fn policy(
        &self,
        now: i64,
    ) -> anyhow::Result<(crate::domain::KeyPolicy, Option<i64>)> {
        let rate = match &self.rate {
            None => None,
            Some(r) => Some(
                r.trim()
                    .trim_end_matches("/s")
                    .parse::<f64>()
                    .map_err(|_| {
                        anyhow::anyhow!(
                            "--rate {r:?}: expected messages per second, like 10 or 10/s"
                        )
                    })?,
            ),
        };
        let allow_ips = list_arg(&self.allow_ip)
            .iter()
            .map(|c| {
                c.parse::<ipnet::IpNet>()
                    .or_else(|_| c.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        anyhow::anyhow!("--allow-ip {c:?} is not a network (10.0.0.0/8) or address")
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let policy = crate::domain::KeyPolicy {
            from_domains: list_arg(&self.from_domain),
            rcpt_domains: list_arg(&self.rcpt_domain),
            rate_per_sec: rate,
            daily_limit: self.daily,
            allow_ips,
        }
        .normalized()
        .map_err(|e| anyhow::anyhow!(e))?;
        let expires_at =
            match &self.expires {
                None => None,
                Some(e) => Some(match parse_rfc3339_ms(e) {
                    Some(t) => t,
                    None => now + parse_duration_ms(e).map_err(|_| {
                        anyhow::anyhow!(
                            "--expires {e:?}: expected a duration (90d, 12h) or an RFC 3339 time"
                        )
                    })?,
                }),
            };
        if expires_at.is_some_and(|t| t <= now) {
            bail!("--expires is in the past");
        }
        Ok((policy, expires_at))
    }
}

/// `keys report-leak`: the same containment as a GitHub report.
pub(super) async fn report_leak(
    cfg: &Config,
    json_out: bool,
    now: i64,
    secret: &str,
    url: Option<&str>,
) -> anyhow::Result<()> {
    use crate::leaks::{Finding, Outcome};
    let store = open_store(cfg).await?;
    let found = Finding {
        kind: Some("postern_api_key"),
        url,
        source: Some("operator"),
    };
    let actor = audit::cli_actor();
    match crate::leaks::report(&store, secret, &found, &actor, None, now).await? {
        Outcome::NotOurs => {
            bail!(
                "not a key of this Postern (malformed, wrong checksum, or unknown): nothing revoked"
            )
        }
        Outcome::Leaked { key_id, held } => {
            crate::audit::write_head(&store, &cfg.audit.head_path(&cfg.data_dir), now).await?;
            if json_out {
                println!("{}", json!({"id": key_id, "revoked": true, "held": held}));
            } else {
                println!(
                    "Revoked key {key_id}; {held} waiting messages held (review: postern held list --key {key_id}; \
                     release with postern resume --key {key_id}). Running servers refuse it within {} s.",
                    crate::auth::CACHE_TTL.as_secs()
                );
            }
            Ok(())
        }
    }
}
