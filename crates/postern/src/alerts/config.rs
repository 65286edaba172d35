//! `[alerts]` in postern.toml: where operators are told of guard trips, and when to escalate.

use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsConfig {
    /// The same alert (signal, scope, target) again within this window adds to the count of
    /// the notice already sent instead of sending another.
    #[serde(default = "default_dedup")]
    pub dedup_window_secs: u64,
    /// A notice nobody acknowledged after this long goes to the channels of the next level.
    #[serde(default = "default_escalate")]
    pub escalate_after_secs: u64,
    #[serde(default)]
    pub channels: Vec<ChannelConfig>,
}

fn default_dedup() -> u64 {
    900
}
fn default_escalate() -> u64 {
    900
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            dedup_window_secs: default_dedup(),
            escalate_after_secs: default_escalate(),
            channels: Vec::new(),
        }
    }
}

/// One way to reach operators. `level` 1 is told at once; each higher level when the notice
/// is still unacknowledged `escalate_after_secs` after the level before it.
#[derive(Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum ChannelConfig {
    /// A signed JSON POST (`Postern-Signature: t=…,v1=HMAC-SHA256`, as the webhook provider).
    Webhook {
        url: String,
        secret: SecretString,
        #[serde(default = "one")]
        level: u32,
    },
    /// Email through the first of `providers` that is not under suspicion and not down.
    Email {
        from: String,
        to: Vec<String>,
        providers: Vec<String>,
        #[serde(default = "one")]
        level: u32,
    },
    /// A text message through an SMS provider (twilio).
    Sms {
        provider: String,
        to: Vec<String>,
        #[serde(default = "one")]
        level: u32,
    },
}

fn one() -> u32 {
    1
}

impl ChannelConfig {
    pub fn level(&self) -> u32 {
        match self {
            Self::Webhook { level, .. } | Self::Email { level, .. } | Self::Sms { level, .. } => {
                *level
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook { .. } => "webhook",
            Self::Email { .. } => "email",
            Self::Sms { .. } => "sms",
        }
    }
}

// Hand-written: the secret is never shown, and the URL only by host (it often carries a token).
impl std::fmt::Debug for ChannelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Webhook { url, level, .. } => f
                .debug_struct("Webhook")
                .field("url", &crate::config::redact_url(url))
                .field("secret", &"[redacted]")
                .field("level", level)
                .finish(),
            Self::Email {
                from,
                to,
                providers,
                level,
            } => f
                .debug_struct("Email")
                .field("from", from)
                .field("to", to)
                .field("providers", providers)
                .field("level", level)
                .finish(),
            Self::Sms {
                provider,
                to,
                level,
            } => f
                .debug_struct("Sms")
                .field("provider", provider)
                .field("to", to)
                .field("level", level)
                .finish(),
        }
    }
}
