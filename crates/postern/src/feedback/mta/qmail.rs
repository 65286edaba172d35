//! qmail and its clones (Yahoo!, vpopmail, ...): "Hi. This is the qmail-send program", one
//! `<address>:` line per recipient, the remote answer below it, and the returned message after
//! "--- Below this line is a copy of the message.".

use crate::feedback::Delivery;
use crate::feedback::generic::{Family, Layout};
use crate::feedback::message::Email;
use crate::feedback::reason::Reason;

const FAMILY: Family = Family {
    layout: Layout {
        starts: &[
            "hi. this is the qmail",
            "he/her is not ",
            "unable to deliver your message to the following address",
            "su mensaje no pudo ser entregado",
            "sorry, we were unable to deliver your message to the following address",
            "this is the machine generated message from mail service",
            "this is the mail delivery agent at",
            "unable to deliver message to the following address",
            "unfortunately, your mail was not delivered to the following address:",
            "your mail message to the following address",
            "your message to the following addresses",
            "we're sorry.",
        ],
        ends: &[
            "--- below this line is a copy of the message.",
            "--- below this line is a copy of the mail header.",
            "--- below the next line is a copy of the message.",
            "--- mensaje original adjunto.",
            "content-type: message/rfc822",
            "original message follows.",
        ],
    },
    commands: &[
        ("CONN", &[" but greeting failed."]),
        ("EHLO", &[" but my name was rejected."]),
        ("MAIL", &[" but sender was rejected."]),
        ("RCPT", &[" does not like recipient.", "[rcpt_to]"]),
        (
            "DATA",
            &[
                " failed on data command",
                " failed after i sent the message",
            ],
        ),
    ],
    reasons: &[
        (Reason::HostUnknown, &["sorry, i couldn't find any host "]),
        (Reason::MailboxFull, &["disk quota exceeded"]),
        (
            Reason::MesgTooBig,
            &["message size exceeds fixed maximum message size:"],
        ),
        (
            Reason::NetworkError,
            &[
                "sorry, i wasn't able to establish an smtp connection",
                "sorry. although i'm listed as a best-preference mx or a for that host",
            ],
        ),
        (
            Reason::NotAccept,
            &["sorry, i couldn't find a mail exchanger or ip address"],
        ),
        (
            Reason::SystemFull,
            &["requested action not taken: mailbox unavailable (not enough free space)"],
        ),
        (Reason::UserUnknown, &["no mailbox here by that name"]),
        (
            Reason::ExceedLimit,
            &["the message exeeded the maximum size the user accepts"],
        ),
        (
            Reason::Suspend,
            &[
                "mailaddress is administrativly disabled",
                "mailaddress is administrativley disabled",
                "mailaddress is administratively disabled",
                "mailaddress is administrativeley disabled",
            ],
        ),
        (
            Reason::SystemError,
            &[
                "bad interpreter: no such file or directory",
                "system error",
                "automatic homedir creator crashed",
                "illegal value in ldap attribute",
                "ldap attribute is not given but mandatory",
                "timeout while performing search on ldap server",
                "too many results returned but needs to be unique",
                "permanent error while executing qmail-forward",
                "temporary error in automatic homedir creation",
                "temporary error while executing qmail-forward",
                "temporary failure in ldap lookup",
                "unable to contact ldap server",
                "unable to login into ldap server, bad credentials",
            ],
        ),
        (
            Reason::Expired,
            &["this message has been in the queue too long."],
        ),
    ],
};

fn is_qmail(email: &Email) -> bool {
    let subject = email.subject_lower();
    subject == "failure notice"
        || email.headers.iter().any(|(n, v)| {
            n == "received"
                && v.contains("(qmail ")
                && (v.contains("invoked for bounce") || v.contains("invoked from network"))
        })
}

pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    if !is_qmail(email) {
        return None;
    }
    let mut found = FAMILY.read(email);
    for d in &mut found {
        let lower = d.diagnosis.to_ascii_lowercase();
        if matches!(d.command.as_str(), "EHLO" | "HELO") {
            d.reason = Some(Reason::Blocked);
        } else if lower.contains(" does not like recipient.")
            && lower.contains("this message has been in the queue too long.")
        {
            d.reason = Some(Reason::OnHold);
        }
    }
    Some(found)
}
