//! `postern.toml`, with every key overridable from the environment as
//! `POSTERN_<SECTION>_<KEY>` (top-level keys as `POSTERN_<KEY>`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::providers::limits::ProviderLimits;

mod load;
mod provider;
#[cfg(test)]
mod tests;

pub use provider::{ProviderConfig, redact_url};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://user@host/db`; default: SQLite in `data_dir`.
    #[serde(default)]
    pub database_url: Option<String>,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub smtp: SmtpConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    #[serde(default)]
    pub routes: RoutesConfig,
    #[serde(default)]
    pub suppression: SuppressionConfig,
    #[serde(default)]
    pub feedback: FeedbackConfig,
    #[serde(default)]
    pub guard: crate::guard::GuardConfig,
    #[serde(default)]
    pub admin: crate::admin::AdminConfig,
    #[serde(default)]
    pub alerts: crate::alerts::AlertsConfig,
    #[serde(default)]
    pub audit: crate::audit::AuditConfig,
    #[serde(default)]
    pub leaks: crate::leaks::LeaksConfig,
    #[serde(default)]
    pub secrets: crate::secrets::SecretsConfig,
    /// `max_rate` and `max_concurrency` of each `[providers.NAME]` table, taken out before
    /// the provider's own settings are read, so every provider type has them.
    #[serde(skip)]
    pub provider_limits: BTreeMap<String, ProviderLimits>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default = "default_http_listen")]
    pub listen: SocketAddr,
    /// Largest accepted request body (and so message), in bytes.
    #[serde(default = "default_max_message_bytes")]
    pub max_body_bytes: usize,
    /// PEM certificate chain and key: HTTPS instead of HTTP (reloaded on SIGHUP).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback (API keys then cross the network
    /// in the clear; only behind a TLS-terminating proxy).
    #[serde(default)]
    pub allow_plaintext: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Submission listener; set `enabled = false` to turn it off.
    #[serde(default = "default_smtp_listen")]
    pub listen: SocketAddr,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Name in the greeting and EHLO answer.
    #[serde(default = "default_hostname")]
    pub hostname: String,
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    #[serde(default = "default_max_recipients")]
    pub max_recipients: usize,
    /// PEM files for STARTTLS; default: the pair `postern init` writes into `data_dir`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Allow AUTH before STARTTLS from non-loopback clients (never recommended).
    #[serde(default)]
    pub allow_plaintext_auth: bool,
    /// How long a session may wait for the client (a command, an AUTH answer, mail data, the
    /// TLS handshake) before it is closed with 421.
    #[serde(default = "default_smtp_idle_timeout")]
    pub idle_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// After this long without delivery a message expires (with a reason).
    #[serde(default = "default_retry_window")]
    pub retry_window_secs: u64,
    /// First retry delay; doubles each attempt, with full jitter.
    #[serde(default = "default_backoff_base")]
    pub backoff_base_secs: u64,
    #[serde(default = "default_backoff_max")]
    pub backoff_max_secs: u64,
    /// Run delivery workers on this node. `false` makes an accept-only node (several nodes
    /// sharing PostgreSQL can split accepting and delivering).
    #[serde(default = "yes")]
    pub deliver: bool,
    /// Deliveries in flight at once on this node.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// How long a claim is held before another node may take it over.
    #[serde(default = "default_lease")]
    pub lease_secs: u64,
    /// Largest group of accepts written in one commit.
    #[serde(default = "default_commit_batch")]
    pub commit_batch: usize,
    /// SQLite: least time between two flushes of the accepts' log, in microseconds (0: flush
    /// as soon as a commit returns). Under load the flushes otherwise run back to back, each
    /// covering a small commit; pacing them makes fewer, larger commits for less CPU, and
    /// every accept waits for its answer up to that much longer. Idle, the last flush is long
    /// past and nothing waits.
    #[serde(default = "default_flush_pacing")]
    pub flush_pacing_us: u64,
    /// How long `serve` waits for in-flight deliveries on SIGTERM.
    #[serde(default = "default_drain")]
    pub drain_secs: u64,
    /// How often each provider is probed and asked for its account status (SES GetAccount).
    #[serde(default = "default_probe_interval")]
    pub probe_interval_secs: u64,
}

/// Where bounces come back to.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackConfig {
    /// Envelope sender domain for outgoing mail: each message goes out from
    /// `bounce+<message id>@<bounce_domain>` (VERP), so a bounce maps to its message even when
    /// the report is mangled. Unset: the sender's own address.
    #[serde(default)]
    pub bounce_domain: Option<String>,
    /// Where the bounce listener (SMTP, no AUTH, only mail to `bounce_domain`) listens.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// `POST /v1/feedback/ses`: SNS notifications from Amazon SES.
    #[serde(default)]
    pub ses: SesFeedbackConfig,
}

/// How SNS messages to `POST /v1/feedback/ses` are authenticated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SesFeedbackConfig {
    /// Hosts `SigningCertURL` and `SubscribeURL` may point to; empty: any
    /// `sns.<region>.amazonaws.com` (or `.amazonaws.com.cn`).
    #[serde(default)]
    pub allowed_cert_hosts: Vec<String>,
    /// Topics accepted (your SES feedback topics); empty: none, the endpoint refuses everything.
    #[serde(default)]
    pub topic_arns: Vec<String>,
    /// Messages older than this (by their `Timestamp`) are refused.
    #[serde(default = "default_sns_max_age")]
    pub max_age_secs: u64,
    /// Signing certificates kept in memory.
    #[serde(default = "default_sns_cert_cache")]
    pub cert_cache_size: usize,
    /// PEM roots trusted for fetching certificates, besides the public ones (a private
    /// SNS-compatible endpoint).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Default for SesFeedbackConfig {
    fn default() -> Self {
        Self {
            allowed_cert_hosts: Vec::new(),
            topic_arns: Vec::new(),
            max_age_secs: default_sns_max_age(),
            cert_cache_size: default_sns_cert_cache(),
            ca_file: None,
        }
    }
}

fn default_sns_max_age() -> u64 {
    3600
}

fn default_sns_cert_cache() -> usize {
    16
}

/// What goes on a tenant's suppression list by itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuppressionConfig {
    /// Recipients a provider refused as nonexistent (5.1.1, 5.1.2, ...).
    #[serde(default = "yes")]
    pub hard_bounces: bool,
    /// Recipients who complained (ARF feedback).
    #[serde(default = "yes")]
    pub complaints: bool,
}

impl Default for SuppressionConfig {
    fn default() -> Self {
        Self {
            hard_bounces: true,
            complaints: true,
        }
    }
}
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    #[default]
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesConfig {
    /// Ordered provider names: the first healthy one wins.
    #[serde(default = "default_route")]
    pub default: Vec<String>,
}

fn yes() -> bool {
    true
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("./postern-data")
}
fn default_http_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8025))
}
fn default_smtp_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 2587))
}
fn default_hostname() -> String {
    "localhost".into()
}
fn default_max_message_bytes() -> usize {
    10 * 1024 * 1024
}
fn default_max_recipients() -> usize {
    100
}
/// RFC 5321 4.5.3.2 asks for at least five minutes between commands.
fn default_smtp_idle_timeout() -> u64 {
    300
}
fn default_retry_window() -> u64 {
    3 * 24 * 3600
}
fn default_backoff_base() -> u64 {
    30
}
fn default_backoff_max() -> u64 {
    3600
}
fn default_concurrency() -> usize {
    64
}
fn default_lease() -> u64 {
    300
}
fn default_commit_batch() -> usize {
    512
}
const MAX_FLUSH_PACING_US: u64 = 100_000;
/// 250 us: at half of the maximum rate (8,700-12,000/s here) it halved the median answer
/// against 1,000 us (0.9-1.0 ms against 1.8-2.0) and lowered the p99, for ~15 % more CPU
/// per accept at that rate and no change at full load beyond the run-to-run noise
/// (bench/README.md, "Flush pacing at half load").
fn default_flush_pacing() -> u64 {
    250
}
fn default_drain() -> u64 {
    30
}
fn default_probe_interval() -> u64 {
    30
}
fn default_route() -> Vec<String> {
    vec!["local".into()]
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: default_http_listen(),
            max_body_bytes: default_max_message_bytes(),
            tls_cert: None,
            tls_key: None,
            allow_plaintext: false,
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            listen: default_smtp_listen(),
            enabled: true,
            hostname: default_hostname(),
            max_message_bytes: default_max_message_bytes(),
            max_recipients: default_max_recipients(),
            tls_cert: None,
            tls_key: None,
            allow_plaintext_auth: false,
            idle_timeout_secs: default_smtp_idle_timeout(),
        }
    }
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            retry_window_secs: default_retry_window(),
            deliver: true,
            backoff_base_secs: default_backoff_base(),
            backoff_max_secs: default_backoff_max(),
            concurrency: default_concurrency(),
            lease_secs: default_lease(),
            commit_batch: default_commit_batch(),
            flush_pacing_us: default_flush_pacing(),
            drain_secs: default_drain(),
            probe_interval_secs: default_probe_interval(),
        }
    }
}

impl Default for RoutesConfig {
    fn default() -> Self {
        Self {
            default: default_route(),
        }
    }
}
