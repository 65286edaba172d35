//! Japanese mobile carriers: au by KDDI (ezweb.ne.jp, dion.ne.jp) writes its own English
//! notices ("Your mail sent on:", "The user(s) account is disabled.") naming the reason.

use crate::feedback::Delivery;
use crate::feedback::generic::{Family, Layout};
use crate::feedback::message::Email;
use crate::feedback::reason::Reason;

const FAMILY: Family = Family {
    layout: Layout {
        starts: &[],
        ends: &[
            "content-type: message/rfc822",
            "--------------------------------------------------",
        ],
    },
    commands: &[],
    reasons: &[
        (
            Reason::MailboxFull,
            &[
                "as their mailbox is full",
                "the user(s) account is temporarily over quota",
            ],
        ),
        (
            Reason::NoRelaying,
            &["due to the following smtp relay error"],
        ),
        (Reason::HostUnknown, &["as the remote domain doesnt exist"]),
        (Reason::Expired, &["your message was not delivered within "]),
        (
            Reason::OnHold,
            &["each of the following recipients was rejected by a remote mail server"],
        ),
        (
            Reason::Suspend,
            &[
                "the user(s) account is disabled.",
                "the user(s) account is temporarily limited.",
            ],
        ),
    ],
};

pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    let from = email.sender_lower();
    let carrier = ["ezweb.ne.jp", "dion.ne.jp", "au.com", "auone-net.jp"]
        .iter()
        .any(|d| from.contains(d));
    carrier.then(|| FAMILY.read(email))
}
