//! Exim (and the providers running it: Mail.ru, 1&1, GMX, MXLogic, ...): "This message was
//! created automatically by mail delivery software", each failed address indented by two
//! spaces with the remote answer below it, X-Failed-Recipients in the header.

use crate::feedback::Delivery;
use crate::feedback::generic::{Family, Layout, says_any};
use crate::feedback::message::Email;
use crate::feedback::reason::Reason;

const FAMILY: Family = Family {
    layout: Layout {
        starts: &[
            "this message was created automatically by mail delivery software.",
            "a message that you sent was rejected by the local scannning code",
            "a message that you sent contained one or more recipient addresses ",
            "a message that you sent could not be delivered to all of its recipients",
            " has been frozen",
            " was frozen on arrival",
            " router encountered the following error(s):",
        ],
        ends: &[
            "------ this is a copy of the message, including all the headers. ------",
            "----- this is a copy of the message, including all the headers. -----",
            "content-type: message/rfc822",
            "included is a copy of the message header:",
            "--- the header of the original message is following. ---",
            "------ this is a copy of the message's headers. ------",
        ],
    },
    commands: &[],
    reasons: &[
        (Reason::UserUnknown, &["user not found"]),
        (
            Reason::HostUnknown,
            &[
                "all host address lookups failed permanently",
                "all relevant mx records point to non-existent hosts",
                "unrouteable address",
            ],
        ),
        (
            Reason::MailboxFull,
            &["mailbox is full", "error: quota exceed"],
        ),
        (
            Reason::NotAccept,
            &[
                "an mx or srv record indicated no smtp service",
                "no host found for existing smtp connection",
            ],
        ),
        (
            Reason::SyntaxError,
            &[
                "angle-brackets nested too deep",
                "expected word or \"<\"",
                "domain missing in source-routed address",
                "malformed address:",
            ],
        ),
        (
            Reason::SystemError,
            &[
                "delivery to file forbidden",
                "delivery to pipe forbidden",
                "local delivery failed",
                "lmtp error after ",
            ],
        ),
        (Reason::ContentError, &["too many \"received\" headers"]),
    ],
};

/// Exim's words for a message it gave up on after retrying.
const DELAYED: &[&str] = &[
    "retry timeout exceeded",
    "no action is required on your part",
    "retry time not reached for any host after a long failure period",
    "all hosts have been failing for a long time and were last tried",
    "delay reason: ",
    "has been frozen",
    "was frozen on arrival by ",
];

fn is_exim(email: &Email) -> bool {
    let titles = [
        "delivery status notification",
        "mail delivery failed",
        "mail failure",
        "message frozen",
        "warning: message ",
        "error(s) in forwarding or filtering",
    ];
    let subject = email.subject_lower();
    let mut votes = 0;
    if email.sender_lower().contains("mail delivery system") {
        votes += 1;
    }
    if exim_message_id(email.header("message-id").unwrap_or("")) {
        votes += 1;
    }
    if titles.iter().any(|t| subject.contains(t)) {
        votes += 1;
    }
    let third_party = ["x-mx-bounce", "x-mxl-hash", "x-mxl-notehash"]
        .iter()
        .any(|h| email.has_header(h));
    votes >= 2 || third_party || (email.has_header("x-failed-recipients") && votes >= 1)
}

/// `<E1X58pB-0004bW-2s@host>`: Exim's message ids.
fn exim_message_id(id: &str) -> bool {
    id.find('<') == Some(0) && id.find('-') == Some(8) && id.find('@') == Some(18)
}

pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    if !is_exim(email) {
        return None;
    }
    let mut found = FAMILY.read(email);
    for d in &mut found {
        let lower = d.diagnosis.to_ascii_lowercase();
        let command = crate::feedback::codes::find_command(&d.diagnosis).unwrap_or("");
        if lower.contains("smtp error from remote ") || lower.contains("lmtp error after ") {
            d.command = command.to_string();
        }
        match d.command.as_str() {
            "EHLO" | "HELO" => d.reason = Some(Reason::Blocked),
            "MAIL" => d.reason = Some(Reason::OnHold),
            _ if d.reason.is_none() && says_any(&lower, DELAYED) => {
                d.reason = Some(Reason::Expired)
            }
            _ if d.reason.is_none() && lower.contains("pipe to |") => {
                d.reason = Some(Reason::MailerError)
            }
            _ => {}
        }
    }
    Some(found)
}
