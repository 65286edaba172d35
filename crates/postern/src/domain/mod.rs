//! Types that are valid by construction. Raw strings stop at the edge: HTTP, SMTP and CLI input
//! is parsed into these before anything else sees it.

mod address;
mod key;
mod key_policy;
mod message;
mod tenant;

pub use address::{AddressError, EmailAddress};
pub use key::{ApiKeyId, ApiKeySecret, KeyError, KeyMode};
pub use key_policy::KeyPolicy;
pub use message::{EventKind, MessageStatus, RecipientState, new_message_uuid};
pub use tenant::{TenantError, TenantName};
