//! The life of a message. Every accepted message ends in a final state, and every transition is
//! an event with a reason.

use serde::{Deserialize, Serialize};

/// State of a message row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Durable, waiting for a worker.
    Queued,
    /// Claimed by a worker; the attempt is recorded before the provider is called.
    Sending,
    /// A transient failure; retried after a backoff.
    Deferred,
    Delivered,
    Bounced,
    Expired,
    Held,
    Suppressed,
    Purged,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Deferred => "deferred",
            Self::Delivered => "delivered",
            Self::Bounced => "bounced",
            Self::Expired => "expired",
            Self::Held => "held",
            Self::Suppressed => "suppressed",
            Self::Purged => "purged",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::Bounced | Self::Expired | Self::Suppressed | Self::Purged
        )
    }
}

/// Per-recipient state, stored with the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientState {
    Pending,
    Delivered,
    Bounced,
    Expired,
    /// On the tenant's suppression list: never sent.
    Suppressed,
}

/// Kinds of events in a message's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Queued,
    Attempted,
    Delivered,
    Deferred,
    Bounced,
    Expired,
    Recovered,
    /// A provider refused as a whole and the attempt moved to the next one in the route.
    Failover,
    Held,
    Released,
    Purged,
    Suppressed,
    /// The recipient complained (ARF feedback).
    Complained,
    /// An automatic reply (out of office, ticket received) came back.
    AutoReplied,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Attempted => "attempted",
            Self::Delivered => "delivered",
            Self::Deferred => "deferred",
            Self::Bounced => "bounced",
            Self::Expired => "expired",
            Self::Recovered => "recovered",
            Self::Failover => "failover",
            Self::Held => "held",
            Self::Released => "released",
            Self::Purged => "purged",
            Self::Suppressed => "suppressed",
            Self::Complained => "complained",
            Self::AutoReplied => "auto_replied",
        }
    }
}
