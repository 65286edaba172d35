//! Readers for the non-standard bounces of particular MTAs and providers, one module per
//! family. Each recognises its own messages (by sender, subject, headers or the wording of the
//! report) and returns None for anything else, so the order below only matters where two
//! families could claim the same message.

use super::Delivery;
use super::message::Email;

type Reader = fn(&Email) -> Option<Vec<Delivery>>;

const READERS: &[Reader] = &[];

/// The first family reader that recognises the message and finds a recipient.
pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    READERS
        .iter()
        .find_map(|reader| reader(email).filter(|found| !found.is_empty()))
}
