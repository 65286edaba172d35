//! `postern.toml`, with every key overridable from the environment as
//! `POSTERN_<SECTION>_<KEY>` (top-level keys as `POSTERN_<KEY>`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use secrecy::SecretString;
use serde::Deserialize;

use crate::providers::limits::ProviderLimits;

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
    /// covering a small commit; pacing them makes fewer, larger commits for less CPU. Idle,
    /// the last flush is long past and nothing waits.
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

#[derive(Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ProviderConfig {
    /// Writes each delivered message as an `.eml` file.
    File { dir: PathBuf },
    /// Relays to an SMTP server.
    Smtp {
        host: String,
        #[serde(default = "default_smtp_port")]
        port: u16,
        #[serde(default)]
        tls: SmtpTls,
        #[serde(default)]
        username: Option<String>,
        #[serde(default)]
        password: Option<SecretString>,
        #[serde(default = "default_smtp_connections")]
        max_connections: usize,
        #[serde(default = "default_smtp_timeout")]
        timeout_secs: u64,
        /// Name sent in EHLO; default: the SMTP hostname of this node.
        #[serde(default)]
        hello_name: Option<String>,
        /// Accept self-signed certificates (test relays only).
        #[serde(default)]
        danger_accept_invalid_certs: bool,
    },
    /// Amazon SES v2 `SendEmail` with the raw message, signed with a static access key.
    Ses {
        #[serde(default = "default_ses_region")]
        region: String,
        access_key_id: String,
        secret_access_key: SecretString,
        /// Default: the regional SES endpoint.
        #[serde(default)]
        endpoint: Option<String>,
        /// SES configuration set for event publishing (bounces, complaints).
        #[serde(default)]
        configuration_set: Option<String>,
        #[serde(default = "default_http_timeout")]
        timeout_secs: u64,
    },
    /// Postmark's `POST /email`.
    Postmark {
        server_token: SecretString,
        #[serde(default = "default_postmark_url")]
        base_url: String,
        #[serde(default = "default_postmark_stream")]
        message_stream: String,
        #[serde(default = "default_http_timeout")]
        timeout_secs: u64,
    },
    /// Mailgun's `POST /v3/{domain}/messages.mime`.
    Mailgun {
        domain: String,
        api_key: SecretString,
        /// `https://api.eu.mailgun.net` for EU domains.
        #[serde(default = "default_mailgun_url")]
        base_url: String,
        #[serde(default = "default_http_timeout")]
        timeout_secs: u64,
    },
    /// SendGrid's `POST /v3/mail/send`.
    Sendgrid {
        api_key: SecretString,
        #[serde(default = "default_sendgrid_url")]
        base_url: String,
        #[serde(default = "default_http_timeout")]
        timeout_secs: u64,
    },
    /// SMS through Twilio's Messages API.
    Twilio {
        account_sid: String,
        auth_token: SecretString,
        /// Sender number (E.164); or set `messaging_service_sid`.
        #[serde(default)]
        from: Option<String>,
        #[serde(default)]
        messaging_service_sid: Option<String>,
        #[serde(default = "default_twilio_url")]
        base_url: String,
        #[serde(default = "default_http_timeout")]
        timeout_secs: u64,
    },
    /// A signed JSON POST of each message to a URL (a tenant's own copy, or any receiver).
    Webhook {
        url: String,
        /// Key of the HMAC-SHA256 in the `Postern-Signature` header.
        secret: SecretString,
        #[serde(default = "default_http_timeout")]
        timeout_secs: u64,
    },
    /// Status posts through a Mastodon-compatible API with the account's OAuth token.
    Social {
        /// The instance, e.g. `https://mastodon.social`.
        base_url: String,
        access_token: SecretString,
        /// The handle the token posts as (`name` or `name@instance`); recipients must name it.
        account: String,
        #[serde(default = "default_visibility")]
        visibility: String,
        #[serde(default = "default_http_timeout")]
        timeout_secs: u64,
    },
}

impl std::fmt::Debug for ProviderConfig {
    // Hand-written so credentials can never reach a log line through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File { dir } => f.debug_struct("File").field("dir", dir).finish(),
            Self::Smtp {
                host,
                port,
                tls,
                username,
                ..
            } => f
                .debug_struct("Smtp")
                .field("host", host)
                .field("port", port)
                .field("tls", tls)
                .field("username", username)
                .finish_non_exhaustive(),
            Self::Ses {
                region,
                access_key_id,
                endpoint,
                configuration_set,
                timeout_secs,
                ..
            } => f
                .debug_struct("Ses")
                .field("region", region)
                .field("access_key_id", access_key_id)
                .field("secret_access_key", &REDACTED)
                .field("endpoint", endpoint)
                .field("configuration_set", configuration_set)
                .field("timeout_secs", timeout_secs)
                .finish(),
            Self::Postmark {
                base_url,
                message_stream,
                timeout_secs,
                ..
            } => f
                .debug_struct("Postmark")
                .field("server_token", &REDACTED)
                .field("base_url", base_url)
                .field("message_stream", message_stream)
                .field("timeout_secs", timeout_secs)
                .finish(),
            Self::Mailgun {
                domain,
                base_url,
                timeout_secs,
                ..
            } => f
                .debug_struct("Mailgun")
                .field("domain", domain)
                .field("api_key", &REDACTED)
                .field("base_url", base_url)
                .field("timeout_secs", timeout_secs)
                .finish(),
            Self::Sendgrid {
                base_url,
                timeout_secs,
                ..
            } => f
                .debug_struct("Sendgrid")
                .field("api_key", &REDACTED)
                .field("base_url", base_url)
                .field("timeout_secs", timeout_secs)
                .finish(),
            Self::Twilio {
                account_sid,
                from,
                messaging_service_sid,
                base_url,
                timeout_secs,
                ..
            } => f
                .debug_struct("Twilio")
                .field("account_sid", account_sid)
                .field("auth_token", &REDACTED)
                .field("from", from)
                .field("messaging_service_sid", messaging_service_sid)
                .field("base_url", base_url)
                .field("timeout_secs", timeout_secs)
                .finish(),
            // The URL itself may carry a token (many receivers put one in the path or query),
            // so only its scheme and host are shown.
            Self::Webhook {
                url, timeout_secs, ..
            } => f
                .debug_struct("Webhook")
                .field("url", &redact_url(url))
                .field("secret", &REDACTED)
                .field("timeout_secs", timeout_secs)
                .finish(),
            Self::Social {
                base_url,
                account,
                visibility,
                timeout_secs,
                ..
            } => f
                .debug_struct("Social")
                .field("base_url", base_url)
                .field("access_token", &REDACTED)
                .field("account", account)
                .field("visibility", visibility)
                .field("timeout_secs", timeout_secs)
                .finish(),
        }
    }
}

/// Stands in for a secret in `Debug` output.
const REDACTED: Redacted = Redacted;
struct Redacted;
impl std::fmt::Debug for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `https://host:port/…` with the path and query hidden.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit('@').next().unwrap_or_default();
            if rest.len() > host.len() {
                format!("{scheme}://{host}/…")
            } else {
                format!("{scheme}://{host}")
            }
        }
        None => "[redacted]".into(),
    }
}

impl ProviderConfig {
    /// The `type = "..."` of this provider.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::File { .. } => "file",
            Self::Smtp { .. } => "smtp",
            Self::Ses { .. } => "ses",
            Self::Postmark { .. } => "postmark",
            Self::Mailgun { .. } => "mailgun",
            Self::Sendgrid { .. } => "sendgrid",
            Self::Twilio { .. } => "twilio",
            Self::Webhook { .. } => "webhook",
            Self::Social { .. } => "social",
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
fn default_flush_pacing() -> u64 {
    1000
}
fn default_drain() -> u64 {
    30
}
fn default_probe_interval() -> u64 {
    30
}
fn default_smtp_port() -> u16 {
    25
}
fn default_smtp_connections() -> usize {
    16
}
fn default_smtp_timeout() -> u64 {
    30
}
fn default_http_timeout() -> u64 {
    30
}
fn default_ses_region() -> String {
    "us-east-1".into()
}
fn default_postmark_url() -> String {
    "https://api.postmarkapp.com".into()
}
fn default_postmark_stream() -> String {
    "outbound".into()
}
fn default_mailgun_url() -> String {
    "https://api.mailgun.net".into()
}
fn default_sendgrid_url() -> String {
    "https://api.sendgrid.com".into()
}
fn default_twilio_url() -> String {
    "https://api.twilio.com".into()
}
fn default_visibility() -> String {
    "public".into()
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

impl Config {
    /// Reads `path` if it exists (a missing file means all defaults), then applies
    /// `POSTERN_*` environment overrides.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let mut cfg = Self::from_toml_and_env(&text, std::env::vars())
            .with_context(|| format!("in config {}", path.display()))?;
        if let Some(base) = path.parent().filter(|b| !b.as_os_str().is_empty()) {
            cfg.resolve_paths(base);
        }
        Ok(cfg)
    }

    pub fn from_toml_and_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<Self> {
        let mut root: toml::Table = toml::from_str(text)?;
        for (k, v) in env {
            let Some(rest) = k.strip_prefix("POSTERN_") else {
                continue;
            };
            if rest == "CONFIG" || rest.starts_with("TEST_") || rest == "LOG" {
                continue;
            }
            apply_env(&mut root, &rest.to_ascii_lowercase(), &v)
                .with_context(|| format!("environment variable {k}"))?;
        }
        let limits = take_provider_limits(&mut root)?;
        let mut cfg: Config =
            toml::Value::Table(root)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    let msg = e.to_string();
                    // The error names the key as "in `a.b.c`"; say where that is in the file.
                    match msg.rfind("in `") {
                        Some(i) => {
                            let mut path = msg[i + 4..].trim().trim_end_matches('`').to_owned();
                            if let Some(field) = msg
                                .strip_prefix("unknown field `")
                                .and_then(|r| r.split('`').next())
                            {
                                path = format!("{path}.{field}");
                            }
                            anyhow::anyhow!("{}: {}", where_set(text, &path), msg[..i].trim())
                        }
                        None => anyhow::anyhow!(msg),
                    }
                })?;
        cfg.provider_limits = limits;
        cfg.fill_defaults();
        cfg.check(text)?;
        Ok(cfg)
    }

    /// Relative paths in a config file are relative to the file, not to the working directory.
    fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        fix(&mut self.data_dir);
        for p in [&mut self.http.tls_cert, &mut self.http.tls_key]
            .into_iter()
            .flatten()
        {
            fix(p);
        }
        if let Some(p) = self.smtp.tls_cert.as_mut() {
            fix(p);
        }
        if let Some(p) = self.smtp.tls_key.as_mut() {
            fix(p);
        }
        if let Some(p) = self.feedback.ses.ca_file.as_mut() {
            fix(p);
        }
        if let Some(p) = self.audit.head_file.as_mut() {
            fix(p);
        }
        for p in [
            &mut self.secrets.kek_file,
            &mut self.secrets.previous_kek_file,
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        for p in self.providers.values_mut() {
            if let ProviderConfig::File { dir } = p {
                fix(dir);
            }
        }
    }

    /// The embedded default: a file-sink provider named `local` in `data_dir/outbox`.
    fn fill_defaults(&mut self) {
        if self.providers.is_empty() {
            self.providers.insert(
                "local".into(),
                ProviderConfig::File {
                    dir: self.data_dir.join("outbox"),
                },
            );
        }
    }

    fn check(&self, text: &str) -> anyhow::Result<()> {
        let route = || where_set(text, "routes.default");
        if self.routes.default.is_empty() {
            bail!(
                "{}: [routes] default must name at least one provider",
                route()
            );
        }
        for p in &self.routes.default {
            if !self.providers.contains_key(p) {
                let known: Vec<&str> = self.providers.keys().map(String::as_str).collect();
                bail!(
                    "{}: [routes] default names provider {p:?}, which is not defined under [providers] (defined: {})",
                    route(),
                    known.join(", ")
                );
            }
        }
        if self.feedback.listen.is_some() && self.feedback.bounce_domain.is_none() {
            bail!(
                "{}: [feedback] listen needs bounce_domain (the domain the listener takes mail for)",
                where_set(text, "feedback.listen")
            );
        }
        if let Some(d) = &self.feedback.bounce_domain
            && (d.is_empty() || d.contains('@') || !d.contains('.'))
        {
            bail!(
                "{}: [feedback] bounce_domain must be a domain like bounces.example.com",
                where_set(text, "feedback.bounce_domain")
            );
        }
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            bail!(
                "{}: [http] tls_cert and tls_key go together (both or neither)",
                where_set(
                    text,
                    if self.http.tls_cert.is_some() {
                        "http.tls_cert"
                    } else {
                        "http.tls_key"
                    }
                )
            );
        }
        if let Err((path, why)) = self.guard.check() {
            bail!("{}: {why}", where_set(text, &path));
        }
        if self.queue.concurrency == 0 || self.queue.commit_batch == 0 {
            bail!(
                "{}: [queue] concurrency and commit_batch must be at least 1",
                where_set(text, "queue")
            );
        }
        if self.queue.flush_pacing_us > MAX_FLUSH_PACING_US {
            bail!(
                "{}: [queue] flush_pacing_us is {}; at most {MAX_FLUSH_PACING_US} (every accept may wait that long)",
                where_set(text, "queue.flush_pacing_us"),
                self.queue.flush_pacing_us
            );
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("postern.db").display()))
    }

    /// Plain HTTP only on loopback, unless `[http] allow_plaintext` says otherwise: API keys
    /// and admin tokens must not cross a network in the clear.
    pub fn check_http_exposure(&self) -> anyhow::Result<()> {
        let h = &self.http;
        if h.tls_cert.is_none() && !h.listen.ip().is_loopback() && !h.allow_plaintext {
            bail!(
                "[http] listen = \"{}\" is not a loopback address and [http] has no tls_cert/tls_key: \
                 refusing to serve plain HTTP there (set [http] tls_cert and tls_key, or \
                 [http] allow_plaintext = true behind a TLS-terminating proxy)",
                h.listen
            );
        }
        Ok(())
    }

    pub fn tls_paths(&self) -> (PathBuf, PathBuf) {
        (
            self.smtp
                .tls_cert
                .clone()
                .unwrap_or_else(|| self.data_dir.join("tls/cert.pem")),
            self.smtp
                .tls_key
                .clone()
                .unwrap_or_else(|| self.data_dir.join("tls/key.pem")),
        )
    }
}

/// "line N, `a.b.c`" for a dotted key set in the TOML text, or says it came from the
/// environment when the text does not set it.
fn where_set(text: &str, path: &str) -> String {
    match line_of(text, path) {
        Some(n) => format!("line {n}, `{path}`"),
        None => format!("`{path}` (from the environment or a default)"),
    }
}

/// The 1-based line where a dotted key (or, failing that, its table) is set. A plain scan,
/// enough for the `[section]` / `[providers.NAME]` shape of postern.toml.
fn line_of(text: &str, path: &str) -> Option<usize> {
    let parts: Vec<&str> = path.split('.').filter(|p| !p.is_empty()).collect();
    let lines: Vec<&str> = text.lines().collect();
    let header = |l: &str| -> Option<String> {
        let t = l.trim();
        let inner = t.strip_prefix('[')?.split(']').next()?;
        Some(
            inner
                .chars()
                .filter(|c| !c.is_whitespace() && *c != '"')
                .collect(),
        )
    };
    let key_in = |from: usize, key: &str| -> Option<usize> {
        lines
            .iter()
            .enumerate()
            .skip(from)
            .take_while(|(i, l)| *i == from || header(l).is_none())
            .find(|(_, l)| {
                l.trim()
                    .strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with('='))
            })
            .map(|(i, _)| i + 1)
    };
    for split in (1..=parts.len()).rev() {
        let table = parts[..split].join(".");
        let Some(h) = lines
            .iter()
            .position(|l| header(l).as_deref() == Some(&table))
        else {
            continue;
        };
        return parts
            .get(split)
            .and_then(|key| key_in(h + 1, key))
            .or(Some(h + 1));
    }
    // A top-level key, before the first table.
    let first = *parts.first()?;
    key_in(0, first).filter(|n| lines[..*n].iter().all(|l| header(l).is_none()))
}

/// Removes `max_rate` / `max_concurrency` from every provider table and returns them.
fn take_provider_limits(
    root: &mut toml::Table,
) -> anyhow::Result<BTreeMap<String, ProviderLimits>> {
    let mut out = BTreeMap::new();
    let Some(toml::Value::Table(providers)) = root.get_mut("providers") else {
        return Ok(out);
    };
    for (name, p) in providers.iter_mut() {
        let toml::Value::Table(t) = p else { continue };
        let max_rate = match t.remove("max_rate") {
            None => None,
            Some(toml::Value::Integer(n)) if n > 0 => Some(n as f64),
            Some(toml::Value::Float(f)) if f > 0.0 && f.is_finite() => Some(f),
            Some(v) => bail!(
                "[providers.{name}] max_rate must be a positive number of messages per second, not {v}"
            ),
        };
        let max_concurrency = match t.remove("max_concurrency") {
            None => None,
            Some(toml::Value::Integer(n)) if n > 0 => Some(usize::try_from(n)?),
            Some(v) => {
                bail!("[providers.{name}] max_concurrency must be a positive whole number, not {v}")
            }
        };
        out.insert(
            name.clone(),
            ProviderLimits {
                max_rate,
                max_concurrency,
            },
        );
    }
    Ok(out)
}

const TOP_LEVEL: &[&str] = &["data_dir", "database_url"];

/// `http_listen` → `[http] listen`; `providers_relay_host` → `[providers.relay] host`.
fn apply_env(root: &mut toml::Table, key: &str, raw: &str) -> anyhow::Result<()> {
    let value = parse_env_value(raw);
    if TOP_LEVEL.contains(&key) {
        root.insert(key.to_owned(), value);
        return Ok(());
    }
    let (section, rest) = key
        .split_once('_')
        .context("expected POSTERN_<SECTION>_<KEY>")?;
    let table = root
        .entry(section)
        .or_insert_with(|| toml::Value::Table(Default::default()))
        .as_table_mut()
        .context("not a section")?;
    if section == "providers" {
        let (name, field) = rest
            .split_once('_')
            .context("expected POSTERN_PROVIDERS_<NAME>_<KEY>")?;
        let p = table
            .entry(name)
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .context("provider is not a table")?;
        p.insert(field.to_owned(), value);
    } else if let Some(field) = rest.strip_prefix("ses_").filter(|_| section == "feedback") {
        // POSTERN_FEEDBACK_SES_<KEY>: the [feedback.ses] table.
        table
            .entry("ses")
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .context("[feedback] ses is not a table")?
            .insert(field.to_owned(), value);
    } else if let (true, Some(field)) = (section == "guard", rest.strip_prefix("policy_")) {
        // POSTERN_GUARD_POLICY_HOLD_KEY_AT, POSTERN_GUARD_POLICY_SCORES_VOLUME
        let policy = table
            .entry("policy")
            .or_insert_with(|| toml::Value::Table(Default::default()))
            .as_table_mut()
            .context("guard.policy is not a table")?;
        match field.strip_prefix("scores_") {
            Some(signal) => {
                policy
                    .entry("scores")
                    .or_insert_with(|| toml::Value::Table(Default::default()))
                    .as_table_mut()
                    .context("guard.policy.scores is not a table")?
                    .insert(signal.to_owned(), value);
            }
            None => {
                policy.insert(field.to_owned(), value);
            }
        }
    } else {
        table.insert(rest.to_owned(), value);
    }
    Ok(())
}

/// Numbers, booleans and arrays are read as TOML; anything else is a string.
fn parse_env_value(raw: &str) -> toml::Value {
    let probe = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&probe) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback_unless_allowed() {
        let load = |toml: &str| Config::from_toml_and_env(toml, []).unwrap();
        assert!(load("").check_http_exposure().is_ok());
        let open = load("[http]\nlisten = \"0.0.0.0:8025\"\n");
        let err = open.check_http_exposure().unwrap_err().to_string();
        assert!(
            err.contains("[http] listen") && err.contains("allow_plaintext"),
            "{err}"
        );
        let allowed = load("[http]\nlisten = \"0.0.0.0:8025\"\nallow_plaintext = true\n");
        assert!(allowed.check_http_exposure().is_ok());
        let tls =
            load("[http]\nlisten = \"[::]:8443\"\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n");
        assert!(tls.check_http_exposure().is_ok());
        let err = Config::from_toml_and_env("[http]\ntls_cert = \"c.pem\"\n", [])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("line 2, `http.tls_cert`") && err.contains("tls_key"),
            "{err}"
        );
    }

    #[test]
    fn empty_config_is_the_embedded_default() {
        let c = Config::from_toml_and_env("", []).unwrap();
        assert_eq!(c.http.listen.port(), 8025);
        assert_eq!(c.smtp.listen.port(), 2587);
        assert!(matches!(
            c.providers.get("local"),
            Some(ProviderConfig::File { .. })
        ));
        assert!(c.database_url().starts_with("sqlite://"));
    }

    #[test]
    fn env_overrides() {
        let env = [
            (
                "POSTERN_HTTP_LISTEN".to_owned(),
                "127.0.0.1:9000".to_owned(),
            ),
            ("POSTERN_QUEUE_CONCURRENCY".to_owned(), "7".to_owned()),
            (
                "POSTERN_DATABASE_URL".to_owned(),
                "postgres://x@y/z".to_owned(),
            ),
            ("POSTERN_PROVIDERS_RELAY_TYPE".to_owned(), "smtp".to_owned()),
            (
                "POSTERN_PROVIDERS_RELAY_HOST".to_owned(),
                "127.0.0.1".to_owned(),
            ),
            (
                "POSTERN_ROUTES_DEFAULT".to_owned(),
                r#"["relay"]"#.to_owned(),
            ),
        ];
        let c = Config::from_toml_and_env("", env).unwrap();
        assert_eq!(c.http.listen.port(), 9000);
        assert_eq!(c.queue.concurrency, 7);
        assert_eq!(c.database_url(), "postgres://x@y/z");
        assert!(matches!(
            c.providers.get("relay"),
            Some(ProviderConfig::Smtp { port: 25, .. })
        ));
    }

    #[test]
    fn unknown_keys_and_routes_to_nowhere_are_errors() {
        let e = Config::from_toml_and_env("[http]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n", [])
            .unwrap_err();
        assert!(format!("{e:#}").contains("lisen"), "{e:#}");
        let e = Config::from_toml_and_env("[routes]\ndefault = [\"nope\"]\n", []).unwrap_err();
        assert!(e.to_string().contains("nope"));
        assert!(e.to_string().starts_with("line 2, `routes.default`"), "{e}");
    }

    #[test]
    fn errors_name_the_line() {
        let text = "data_dir = \"x\"\n[http]\nlisten = \"127.0.0.1:1\"\n\n[providers.weird]\n# comment\ntype = \"carrierpigeon\"\n";
        let e = Config::from_toml_and_env(text, []).unwrap_err().to_string();
        assert!(
            e.starts_with("line 7, `providers.weird.type`: unknown variant `carrierpigeon`"),
            "{e}"
        );
        let text = "[providers.r]\ntype = \"smtp\"\nhost = \"h\"\nprot = 1\n";
        let e = Config::from_toml_and_env(text, []).unwrap_err().to_string();
        assert!(
            e.starts_with("line 4, `providers.r.prot`: unknown field `prot`"),
            "{e}"
        );
        let text = "[providers.r]\ntype = \"smtp\"\n";
        let e = Config::from_toml_and_env(text, []).unwrap_err().to_string();
        assert!(
            e.contains("line 1, `providers.r`: missing field `host`"),
            "{e}"
        );
        let env = [("POSTERN_PROVIDERS_Q_TYPE".to_owned(), "fax".to_owned())];
        let e = Config::from_toml_and_env("", env).unwrap_err().to_string();
        assert!(
            e.contains("`providers.q.type` (from the environment"),
            "{e}"
        );
        assert_eq!(line_of("a = 1\n[b]\na = 2\n", "a"), Some(1));
        assert_eq!(line_of("[b]\na = 2\n", "a"), None);
    }

    #[test]
    fn provider_sections_are_checked_too() {
        let e = Config::from_toml_and_env(
            "[providers.r]\ntype=\"smtp\"\nhost=\"h\"\nprot=25\n[routes]\ndefault=[\"r\"]\n",
            [],
        )
        .unwrap_err();
        assert!(format!("{e:#}").contains("prot"), "{e:#}");
        let e =
            Config::from_toml_and_env("[providers.r]\ntype=\"carrier-pigeon\"\n", []).unwrap_err();
        assert!(format!("{e:#}").contains("carrier-pigeon"), "{e:#}");
    }

    const EVERY_TYPE: &str = r#"
[providers.ses]
type = "ses"
access_key_id = "AKIAEXAMPLE"
secret_access_key = "S3CRET-ses"
[providers.pm]
type = "postmark"
server_token = "S3CRET-postmark"
[providers.mg]
type = "mailgun"
domain = "mg.example.com"
api_key = "S3CRET-mailgun"
[providers.sg]
type = "sendgrid"
api_key = "S3CRET-sendgrid"
[providers.sms]
type = "twilio"
account_sid = "AC123"
auth_token = "S3CRET-twilio"
from = "+15005550006"
[providers.hook]
type = "webhook"
url = "https://hooks.example.com/in/S3CRET-path?key=S3CRET-query"
secret = "S3CRET-webhook"
[providers.toot]
type = "social"
base_url = "https://social.example"
access_token = "S3CRET-social"
account = "status"
[routes]
default = ["ses"]
"#;

    #[test]
    fn every_provider_type_parses_with_defaults() {
        let c = Config::from_toml_and_env(EVERY_TYPE, []).unwrap();
        let kinds: Vec<&str> = c.providers.values().map(|p| p.kind()).collect();
        assert_eq!(kinds.len(), 7);
        match &c.providers["ses"] {
            ProviderConfig::Ses {
                region, endpoint, ..
            } => {
                assert_eq!(region, "us-east-1");
                assert!(endpoint.is_none());
            }
            p => panic!("{p:?}"),
        }
        match &c.providers["pm"] {
            ProviderConfig::Postmark {
                base_url,
                message_stream,
                timeout_secs,
                ..
            } => {
                assert_eq!(base_url, "https://api.postmarkapp.com");
                assert_eq!(message_stream, "outbound");
                assert_eq!(*timeout_secs, 30);
            }
            p => panic!("{p:?}"),
        }
        assert!(
            matches!(&c.providers["mg"], ProviderConfig::Mailgun { base_url, .. } if base_url == "https://api.mailgun.net")
        );
        assert!(
            matches!(&c.providers["sg"], ProviderConfig::Sendgrid { base_url, .. } if base_url == "https://api.sendgrid.com")
        );
        assert!(
            matches!(&c.providers["sms"], ProviderConfig::Twilio { base_url, .. } if base_url == "https://api.twilio.com")
        );
        assert!(
            matches!(&c.providers["toot"], ProviderConfig::Social { visibility, .. } if visibility == "public")
        );
    }

    #[test]
    fn debug_of_every_provider_type_hides_its_secrets() {
        let c = Config::from_toml_and_env(EVERY_TYPE, []).unwrap();
        for (name, p) in &c.providers {
            let shown = format!("{p:?}");
            assert!(!shown.contains("S3CRET"), "{name}: {shown}");
            assert!(shown.contains("[redacted]"), "{name}: {shown}");
        }
        let all = format!("{c:?}");
        assert!(!all.contains("S3CRET"), "{all}");
        assert!(all.contains("https://hooks.example.com/…"), "{all}");
    }

    #[test]
    fn provider_secrets_and_endpoints_come_from_the_environment() {
        let env = [
            (
                "POSTERN_PROVIDERS_SG_API_KEY".to_owned(),
                "from-env".to_owned(),
            ),
            (
                "POSTERN_PROVIDERS_SG_BASE_URL".to_owned(),
                "http://127.0.0.1:9".to_owned(),
            ),
            (
                "POSTERN_PROVIDERS_SES_REGION".to_owned(),
                "eu-west-1".to_owned(),
            ),
        ];
        let c = Config::from_toml_and_env(EVERY_TYPE, env).unwrap();
        match &c.providers["sg"] {
            ProviderConfig::Sendgrid {
                api_key, base_url, ..
            } => {
                use secrecy::ExposeSecret;
                assert_eq!(api_key.expose_secret(), "from-env");
                assert_eq!(base_url, "http://127.0.0.1:9");
            }
            p => panic!("{p:?}"),
        }
        assert!(
            matches!(&c.providers["ses"], ProviderConfig::Ses { region, .. } if region == "eu-west-1")
        );
    }

    #[test]
    fn urls_are_redacted_to_their_host() {
        assert_eq!(
            redact_url("https://user:pw@h.example:8443/x?y=z"),
            "https://h.example:8443/…"
        );
        assert_eq!(redact_url("http://h"), "http://h");
        assert_eq!(redact_url("garbage"), "[redacted]");
    }

    #[test]
    fn debug_never_shows_a_password() {
        let c = Config::from_toml_and_env(
            "[providers.r]\ntype=\"smtp\"\nhost=\"h\"\npassword=\"hunter2\"\n[routes]\ndefault=[\"r\"]\n",
            [],
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
