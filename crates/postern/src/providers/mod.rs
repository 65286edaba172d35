//! Delivery providers. Each adapter lives in its own file and implements [`Provider`]; errors
//! are classified so the queue can tell a recipient's permanent failure from a provider-wide
//! outage (which later drives health and failover).

mod file;
pub mod health;
mod http;
pub mod limits;
mod mailgun;
mod mime;
mod postmark;
mod sendgrid;
mod ses;
mod smtp;
mod social;
mod twilio;
mod webhook;

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::config::{Config, ProviderConfig};

pub use file::FileProvider;
pub use mailgun::MailgunProvider;
pub use postmark::PostmarkProvider;
pub use sendgrid::SendgridProvider;
pub use ses::SesProvider;
pub use smtp::SmtpProvider;
pub use social::SocialProvider;
pub use twilio::TwilioProvider;
pub use webhook::{
    SIGNATURE_HEADER as WEBHOOK_SIGNATURE_HEADER, WebhookProvider, signature as webhook_signature,
};

/// What kind of message a provider carries. A route only ever holds providers of one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Channel {
    #[default]
    Email,
    /// Text messages to E.164 phone numbers.
    Sms,
    /// Status posts to a social account, made with the account's OAuth token.
    Social,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Email => "email",
            Self::Sms => "sms",
            Self::Social => "social",
        }
    }
}

/// What a provider is asked to deliver.
#[derive(Debug, Clone)]
pub struct OutboundMessage {
    /// Postern's message id; adapters pass it as the idempotency key where the API takes one.
    pub id: String,
    pub tenant_id: String,
    pub channel: Channel,
    pub mail_from: String,
    /// Only the recipients still pending: addresses, E.164 numbers or account handles.
    pub recipients: Vec<String>,
    /// Email: the RFC 5322 message. SMS and social: the UTF-8 text to send.
    pub raw: Arc<[u8]>,
    pub message_id_header: String,
}

/// The provider's answer for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientOutcome {
    Delivered {
        response: String,
    },
    /// Try again later (4xx, greylisting, mailbox busy).
    Deferred {
        code: Option<u16>,
        reason: String,
    },
    /// Never deliverable as sent (5xx, unknown user).
    Bounced {
        code: Option<u16>,
        reason: String,
    },
}

/// Per-recipient outcomes of one call, in the order the recipients were given.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    pub recipients: Vec<(String, RecipientOutcome)>,
}

/// Why a whole call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// This message, now: retry later (timeouts, 4xx to the transaction).
    Transient,
    /// This message, ever: every recipient bounces (5xx to MAIL FROM or to the content).
    Permanent,
    /// The provider itself: nothing will go through it for now. An adapter returns this only
    /// when the provider certainly did not take the message (refused connection, 421, auth,
    /// throttling or suspension answers), because the attempt then moves on to the next
    /// provider at once; when unsure (a timeout after the content was sent) it is `Transient`.
    ProviderWide(ProviderWideKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderWideKind {
    /// Cannot connect, or the server says it is shutting down (421).
    Unavailable,
    /// Rate limits (HTTP 429, SMTP 454/451 throttling).
    Throttled,
    /// Credentials refused.
    AuthFailed,
    /// The account is suspended or sending is paused by the provider.
    AccountSuspended,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    pub class: FailureClass,
    pub code: Option<u16>,
    /// Human-readable, never containing a credential.
    pub message: String,
}

impl ProviderError {
    pub fn new(class: FailureClass, code: Option<u16>, message: impl Into<String>) -> Self {
        Self {
            class,
            code,
            message: message.into(),
        }
    }
}

#[async_trait]
pub trait Provider: Send + Sync + 'static {
    fn name(&self) -> &str;

    /// Delivers one message to its pending recipients.
    async fn send(&self, msg: &OutboundMessage) -> Result<Delivery, ProviderError>;

    /// After a crash, whether an attempt that may have reached the provider did. `None` when
    /// the provider cannot tell; the message is then sent again with the same Message-ID.
    async fn was_delivered(&self, _msg: &OutboundMessage) -> Option<bool> {
        None
    }

    /// A cheap check that the provider is reachable and accepts our credentials.
    async fn probe(&self) -> Result<(), ProviderError>;

    /// Account-level state as the provider reports it (SES `GetAccount`), polled on an
    /// interval. `None` when the provider has no such API.
    async fn account_status(&self) -> Option<Result<AccountStatus, ProviderError>> {
        None
    }

    /// The channel this provider carries.
    fn channel(&self) -> Channel {
        Channel::Email
    }

    /// Closes pooled connections.
    async fn shutdown(&self) {}
}

/// What a provider says about the account Postern sends through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountStatus {
    /// False when the provider has paused or suspended sending.
    pub sending_enabled: bool,
    /// The provider's own word for its review state (SES: `HEALTHY`, `PROBATION`, `SHUTDOWN`).
    pub enforcement: Option<String>,
    /// Messages the provider counted in the last 24 hours, to compare with Postern's ledger.
    pub sent_last_24h: Option<u64>,
}

impl AccountStatus {
    /// The failure this status implies for sending, if any.
    pub fn failure(&self) -> Option<ProviderWideKind> {
        let shut = self
            .enforcement
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case("SHUTDOWN"));
        (!self.sending_enabled || shut).then_some(ProviderWideKind::AccountSuspended)
    }
}

/// The configured providers, by name.
#[derive(Clone, Default)]
pub struct Providers {
    by_name: HashMap<String, Arc<dyn Provider>>,
}

impl Providers {
    pub fn from_config(cfg: &Config) -> anyhow::Result<Self> {
        let mut by_name: HashMap<String, Arc<dyn Provider>> = HashMap::new();
        for (name, p) in &cfg.providers {
            let adapter: Arc<dyn Provider> = match p {
                ProviderConfig::File { dir } => Arc::new(FileProvider::new(name, dir.clone())?),
                ProviderConfig::Smtp { .. } => {
                    Arc::new(SmtpProvider::new(name, p, &cfg.smtp.hostname)?)
                }
                ProviderConfig::Ses { .. } => Arc::new(SesProvider::new(name, p)?),
                ProviderConfig::Postmark { .. } => Arc::new(PostmarkProvider::new(name, p)?),
                ProviderConfig::Mailgun { .. } => Arc::new(MailgunProvider::new(name, p)?),
                ProviderConfig::Sendgrid { .. } => Arc::new(SendgridProvider::new(name, p)?),
                ProviderConfig::Twilio { .. } => Arc::new(TwilioProvider::new(name, p)?),
                ProviderConfig::Webhook { .. } => Arc::new(WebhookProvider::new(name, p)?),
                ProviderConfig::Social { .. } => Arc::new(SocialProvider::new(name, p)?),
            };
            by_name.insert(name.clone(), adapter);
        }
        Ok(Self { by_name })
    }

    /// A registry of ready-made adapters (the simulator's providers).
    pub fn from_adapters(adapters: impl IntoIterator<Item = Arc<dyn Provider>>) -> Self {
        let by_name = adapters
            .into_iter()
            .map(|p| (p.name().to_owned(), p))
            .collect();
        Self { by_name }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Provider>> {
        self.by_name.get(name)
    }

    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_name.keys().cloned().collect();
        v.sort();
        v
    }

    pub async fn shutdown(&self) {
        for p in self.by_name.values() {
            p.shutdown().await;
        }
    }
}
