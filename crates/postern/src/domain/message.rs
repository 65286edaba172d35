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

/// A new time-ordered id (UUID version 7: 48 bits of Unix milliseconds, then 74 random bits).
///
/// `uuid::Uuid::now_v7` reads the OS random source (`getrandom`) for each id: a system call
/// per id, two per accepted message (its id and its Message-ID). The random bits come from
/// rand's thread-local CSPRNG (seeded from the OS) instead, laid out by uuid's own builder.
/// Ids made in the same millisecond are unordered among themselves; nothing relies on more.
pub fn new_message_uuid() -> uuid::Uuid {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    uuid::Builder::from_unix_timestamp_millis(millis, &rand::random::<[u8; 10]>()).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::new_message_uuid;

    #[test]
    fn message_uuids_are_version_7_distinct_and_ordered_by_time() {
        let a = new_message_uuid();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = new_message_uuid();
        assert_eq!(a.get_version_num(), 7);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert!(a < b, "a later millisecond sorts later: {a} {b}");
        let many: std::collections::HashSet<_> = (0..10_000).map(|_| new_message_uuid()).collect();
        assert_eq!(many.len(), 10_000);
    }
}
