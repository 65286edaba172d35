//! Readers for the non-standard bounces of particular MTAs and providers, one module per
//! family. Each recognises its own messages (by sender, subject, headers or the wording of the
//! report) and returns None for anything else, so the order below only matters where two
//! families could claim the same message.

pub(crate) mod amazonses;
mod dragonfly;
mod exchange;
mod exim;
mod gmail;
mod googlegroups;
mod imailserver;
mod japan;
mod notes;
mod opensmtpd;
mod qmail;
mod v5sendmail;
mod verizon;

use super::Delivery;
use super::message::Email;

type Reader = fn(&Email) -> Option<Vec<Delivery>>;

/// Readers for messages that carry their own structured data (tried on every message).
const STRUCTURED: &[Reader] = &[amazonses::read, googlegroups::read];

/// Readers for plain-text reports (tried only when there is no delivery-status part, which the
/// DSN reader reads better).
const TEXT: &[Reader] = &[
    notes::read,
    v5sendmail::read,
    verizon::read,
    dragonfly::read,
    opensmtpd::read,
    gmail::read,
    exchange::read,
    japan::read,
    imailserver::read,
    qmail::read,
    exim::read,
];

/// The first family reader that recognises the message and finds a recipient.
pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    let text: &[Reader] = if email.status_parts.is_empty() {
        TEXT
    } else {
        &[]
    };
    STRUCTURED
        .iter()
        .chain(text)
        .find_map(|reader| reader(email).filter(|found| !found.is_empty()))
}
