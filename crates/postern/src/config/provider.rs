//! `[providers.NAME]`: one variant per provider type; secrets never in `Debug`.

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

use super::SmtpTls;

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
