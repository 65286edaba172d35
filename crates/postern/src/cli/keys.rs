//! API key options: scopes, limits, expiry, and the parsing they need.

use super::*;

pub(super) use crate::clock::parse_duration_ms;

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
        Ok(crate::admin::ops::KeyLimits {
            flag: "--",
            from_domains: list_arg(&self.from_domain),
            rcpt_domains: list_arg(&self.rcpt_domain),
            rate_per_sec: rate,
            daily_limit: self.daily,
            allow_ips: list_arg(&self.allow_ip),
            expires: self.expires.clone(),
        }
        .policy(now)?)
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
