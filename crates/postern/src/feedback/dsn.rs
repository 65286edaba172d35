//! RFC 3464 delivery status notifications: the `message/delivery-status` part, one block of
//! fields per recipient, read together with the human-readable part that comes before it.

use super::Delivery;
use super::address::{addresses_in, clean_address};
use super::generic::{recipient_on, report_section};
use super::message::Email;
use super::reason::Reason;

/// One `Name: value` field of a delivery-status block, name lower-cased, value unfolded.
type Field = (String, String);

/// A delivery-status part without recipient blocks ("Delivery report unavailable") that no
/// other reader made sense of: the returned message's To is the recipient, and nothing is known
/// of the reason.
pub(crate) fn returned_recipient(email: &Email) -> Option<Vec<Delivery>> {
    if email.status_parts.is_empty() {
        return None;
    }
    let to = email
        .returned_headers
        .iter()
        .find(|(n, _)| n == "to")
        .and_then(|(_, v)| addresses_in(v).into_iter().next())?;
    let mut d = Delivery::new(to);
    d.action = "failed".to_string();
    Some(vec![d])
}

/// Reads every recipient block of every delivery-status part.
pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    if email.status_parts.is_empty() {
        return None;
    }
    let mut found = Vec::new();
    for part in &email.status_parts {
        found.extend(read_part(part));
    }
    let human = report_section(&email.text);
    add_human_text(&mut found, &human);
    Some(found)
}

/// The recipients of one delivery-status part. Per-message fields fill what a recipient block
/// leaves out.
pub(crate) fn read_part(part: &str) -> Vec<Delivery> {
    let blocks = split_blocks(part);
    let per_message: Vec<Field> = blocks
        .iter()
        .filter(|b| recipient_of(b).is_none())
        .flatten()
        .cloned()
        .collect();
    blocks
        .iter()
        .filter_map(|b| {
            let recipient = recipient_of(b)?;
            Some(delivery_from(recipient, b, &per_message))
        })
        .collect()
}

/// Splits the part into blocks of unfolded fields. A blank line ends a block, and so does a
/// recipient field that the current block already has.
fn split_blocks(part: &str) -> Vec<Vec<Field>> {
    let mut blocks: Vec<Vec<Field>> = vec![Vec::new()];
    for line in part.lines().take(10_000) {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if blocks.last().is_some_and(|b| !b.is_empty()) {
                blocks.push(Vec::new());
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = blocks.last_mut().and_then(|b| b.last_mut()) {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if name.is_empty() || name.contains(' ') {
            continue;
        }
        let repeats = (name == "final-recipient" || name == "original-recipient")
            && blocks
                .last()
                .is_some_and(|b| b.iter().any(|(n, _)| *n == name));
        if repeats {
            blocks.push(Vec::new());
        }
        if let Some(block) = blocks.last_mut() {
            block.push((name, value.trim().to_string()));
        }
    }
    blocks.retain(|b| !b.is_empty());
    blocks
}

fn field<'a>(block: &'a [Field], name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn recipient_of(block: &[Field]) -> Option<String> {
    [
        "final-recipient",
        "original-recipient",
        "x-actual-recipient",
    ]
    .iter()
    .find_map(|name| field(block, name).and_then(clean_address))
}

fn delivery_from(recipient: String, block: &[Field], per_message: &[Field]) -> Delivery {
    let get = |name: &str| field(block, name).or_else(|| field(per_message, name));
    let mut d = Delivery::new(recipient);
    d.action = get("action")
        .and_then(|a| a.split_whitespace().next())
        .unwrap_or("")
        .to_ascii_lowercase();
    d.status = get("status").map(status_token).unwrap_or_default();
    if let Some(code) = get("diagnostic-code") {
        let (kind, text) = code.split_once(';').unwrap_or(("", code));
        d.diagnostic_type = kind.trim().to_string();
        d.diagnosis = text.trim().to_string();
    }
    // The category is a coarse guess; a status code that names a reason says more.
    if super::codes::status_reason(&d.status).is_none_or(|r| !r.is_explicit()) {
        d.reason = get("x-powermta-bouncecategory").and_then(powermta_category);
    }
    d
}

/// PowerMTA's own verdict (`X-PowerMTA-BounceCategory`), as Sisimai's rfc3464/powermta.go
/// (BSD-2-Clause) reads it.
fn powermta_category(value: &str) -> Option<Reason> {
    Some(match value.trim().to_ascii_lowercase().as_str() {
        "bad-domain" => Reason::HostUnknown,
        "bad-mailbox" => Reason::UserUnknown,
        "inactive-mailbox" => Reason::Suspend,
        "message-expired" => Reason::Expired,
        "no-answer-from-host" => Reason::NetworkError,
        "policy-related" => Reason::PolicyViolation,
        "quota-issues" => Reason::MailboxFull,
        "routing-errors" => Reason::SystemError,
        "spam-related" => Reason::SpamDetected,
        _ => return None,
    })
}

/// `5.1.1 (bad mailbox)` → `5.1.1`.
fn status_token(value: &str) -> String {
    value
        .split(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_string()
}

/// The human-readable part often says more than the Diagnostic-Code (Postfix, Sendmail and
/// Exchange write the remote server's whole answer there). With one recipient it all belongs to
/// it; with several, each takes the lines that name it.
fn add_human_text(found: &mut [Delivery], human: &str) {
    if human.trim().is_empty() {
        return;
    }
    if let [only] = found {
        let lower_human = human.to_ascii_lowercase();
        let lower_diag = only.diagnosis.to_ascii_lowercase();
        if lower_diag.is_empty() || !lower_human.contains(lower_diag.trim()) {
            only.diagnosis = format!("{} {}", human, only.diagnosis);
        } else {
            only.diagnosis = human.to_string();
        }
        return;
    }
    let all: Vec<String> = found
        .iter()
        .map(|d| d.recipient.to_ascii_lowercase())
        .collect();
    for d in found.iter_mut() {
        if let Some(lines) = lines_about(human, &d.recipient, &all) {
            d.diagnosis = format!("{lines} {}", d.diagnosis);
        }
    }
}

/// The line that names `recipient` and the lines after it, up to a blank line or a line that
/// names another recipient.
fn lines_about(human: &str, recipient: &str, all: &[String]) -> Option<String> {
    let lower = recipient.to_ascii_lowercase();
    let lines: Vec<&str> = human.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.to_ascii_lowercase().contains(&lower))?;
    let mut taken = vec![lines.get(at).copied().unwrap_or("")];
    for line in lines.iter().skip(at + 1).take(20) {
        let l = line.to_ascii_lowercase();
        let names_another = all.iter().any(|r| *r != lower && l.contains(r.as_str()))
            || recipient_on(line, &[]).is_some_and(|(a, _)| a.to_ascii_lowercase() != lower);
        if line.trim().is_empty() || names_another {
            break;
        }
        taken.push(line);
    }
    Some(taken.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_blocks_and_per_message_fields() {
        let part = "Reporting-MTA: dns; mx.example.org\nAction: failed\n\n\
Final-Recipient: rfc822; a@example.net\nStatus: 5.1.1\n\
Diagnostic-Code: smtp; 550 5.1.1 unknown\n  user\n\
Final-Recipient: rfc822; b@example.net\nStatus: 4.2.2 (full)\nAction: delayed\n";
        let found = read_part(part);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].recipient, "a@example.net");
        assert_eq!(found[0].action, "failed");
        assert_eq!(found[0].diagnostic_type, "smtp");
        assert_eq!(found[0].diagnosis, "550 5.1.1 unknown user");
        assert_eq!(found[1].status, "4.2.2");
        assert_eq!(found[1].action, "delayed");
    }

    #[test]
    fn falls_back_to_original_recipient() {
        let part = "Original-Recipient: rfc822;<c@example.net>\nFinal-Recipient: x-unix; c\nStatus: 5.0.0\n";
        let found = read_part(part);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].recipient, "c@example.net");
    }
}
