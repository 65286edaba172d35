//! Microsoft Exchange 2003 and older: "Your message ... did not reach the following
//! recipient(s):", then `address on date` and the reason with an MSEXCH diagnostic code, which
//! names the reason.

use crate::feedback::Delivery;
use crate::feedback::generic::{Family, Layout};
use crate::feedback::message::Email;
use crate::feedback::reason::Reason;

const FAMILY: Family = Family {
    layout: Layout {
        starts: &["did not reach the following recipient(s):"],
        ends: &["content-type: message/rfc822"],
    },
    commands: &[],
    reasons: &[
        (Reason::UserUnknown, &["000c05a6"]),
        (Reason::Filtered, &["000c0595"]),
        (Reason::SystemError, &["00010256", "000d06b5"]),
        (Reason::NetworkError, &["00120270"]),
        (Reason::ContentError, &["00050311", "000502cc"]),
        (Reason::SecurityError, &["000b0981"]),
        (Reason::OnHold, &["000b099c", "000b09aa", "000b09b6"]),
    ],
};

pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    email
        .text
        .contains("did not reach the following recipient(s):")
        .then(|| FAMILY.read(email))
}
