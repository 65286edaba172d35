//! RFC 3834 automatic responses: out-of-office notices, "ticket received" acknowledgements and
//! other auto-replies. The recipient is the person (or system) that answered, and the reason
//! is `vacation`. A burst of these is an early sign of a stolen sending key.

use super::Delivery;
use super::address::addresses_in;
use super::message::Email;
use super::reason::Reason;

const SUBJECT_PREFIXES: &[&str] = &[
    "auto:",
    "auto response:",
    "autoreply:",
    "auto-reply:",
    "automatic reply:",
    "automatische antwort:",
    "réponse automatique",
    "risposta automatica",
    "respuesta automática",
    "out of office:",
    "out of the office:",
    "abwesenheitsnotiz:",
];

const SUBJECT_PHRASES: &[&str] = &[
    "out of office",
    "out of the office",
    "autoreply",
    "auto-reply",
    "automatic reply",
    "away from the office",
    "on vacation",
    "ticket received",
    "request received",
    "we have received your",
    "we received your",
    "thank you for contacting",
    "[ticket #",
    "ticket #",
];

/// Bounces and system notices also carry Auto-Submitted; these senders are never auto-replies.
fn is_excluded(email: &Email) -> bool {
    let from = email.sender_lower();
    let subject = email.subject_lower();
    ["root@", "postmaster@", "mailer-daemon@", "mailer-daemon"]
        .iter()
        .any(|p| from.contains(p))
        || subject.contains("security information for")
        || subject.contains("mail failure -")
        || !email.status_parts.is_empty()
}

fn is_auto_reply(email: &Email) -> bool {
    let auto_submitted = email
        .header("auto-submitted")
        .unwrap_or("")
        .to_ascii_lowercase();
    let precedence = email
        .header("precedence")
        .unwrap_or("")
        .to_ascii_lowercase();
    let subject = email.subject_lower();
    auto_submitted.starts_with("auto-replied")
        || auto_submitted.starts_with("auto-generated")
        || auto_submitted.starts_with("auto-notified")
        || precedence.starts_with("auto_reply")
        || email.has_header("x-autoreply")
        || email.has_header("x-autorespond")
        || email.header_contains("x-apple-action", "vacation")
        || SUBJECT_PREFIXES.iter().any(|p| subject.starts_with(p))
        || SUBJECT_PHRASES.iter().any(|p| subject.contains(p))
}

pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    if is_excluded(email) || !is_auto_reply(email) {
        return None;
    }
    let recipient = ["from", "return-path", "reply-to"]
        .iter()
        .filter_map(|h| email.header(h))
        .flat_map(addresses_in)
        .next()?;
    let mut d = Delivery::new(recipient);
    d.reason = Some(Reason::Vacation);
    d.diagnosis = email
        .text
        .split_whitespace()
        .take(200)
        .collect::<Vec<_>>()
        .join(" ");
    Some(vec![d])
}
