//! Ipswitch IMail Server: "Unknown user: address" style lines, then "Original message
//! follows.".

use crate::feedback::Delivery;
use crate::feedback::generic::{Family, Layout};
use crate::feedback::message::Email;
use crate::feedback::reason::Reason;

const FAMILY: Family = Family {
    layout: Layout {
        starts: &[],
        ends: &["original message follows."],
    },
    commands: &[],
    reasons: &[
        (Reason::HostUnknown, &["unknown host"]),
        (
            Reason::UserUnknown,
            &["unknown user", "invalid final delivery userid"],
        ),
        (Reason::MailboxFull, &["user mailbox exceeds allowed size"]),
        (
            Reason::VirusDetected,
            &["requested action not taken: virus detected"],
        ),
        (Reason::SpamDetected, &["blacklisted url in message"]),
        (Reason::Expired, &["delivery failed "]),
    ],
};

pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    let imail = email
        .header("x-mailer")
        .is_some_and(|m| m.contains("IMail"))
        || email.subject_lower().starts_with("undeliverable mail")
            && email.text.contains("Original message follows.");
    imail.then(|| FAMILY.read(email))
}
