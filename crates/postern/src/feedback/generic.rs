//! The text reader every non-standard bounce goes through: find the report section of the
//! text, the lines that name a failed recipient, and the error text that follows each. MTA
//! families (see `mta/`) give it their own section markers; on its own it uses the markers
//! most MTAs share.

use super::Delivery;
use super::address::{addresses_in, clean_address};
use super::codes;
use super::message::Email;
use super::reason::Reason;

/// Where the report section of a family's text starts and ends (lower-case substrings of a
/// line). An empty `starts` means "from the top".
#[derive(Clone, Copy)]
pub(crate) struct Layout {
    pub starts: &'static [&'static str],
    pub ends: &'static [&'static str],
}

/// How one MTA family writes its reports: where the report section is, and the wording it uses
/// for the failing SMTP command and for its own reasons (phrases in any case).
pub(crate) struct Family {
    pub layout: Layout,
    pub commands: &'static [(&'static str, &'static [&'static str])],
    pub reasons: &'static [(Reason, &'static [&'static str])],
}

impl Family {
    /// Reads the section with the family's layout, then applies its wording.
    pub(crate) fn read(&self, email: &Email) -> Vec<Delivery> {
        let mut found = read_with(email, self.layout);
        for d in &mut found {
            let lower = d.diagnosis.to_ascii_lowercase();
            if d.command.is_empty()
                && let Some((command, _)) = self.commands.iter().find(|(_, p)| says_any(&lower, p))
            {
                d.command = (*command).to_string();
            }
            if d.reason.is_none()
                && let Some((reason, _)) = self.reasons.iter().find(|(_, p)| says_any(&lower, p))
            {
                d.reason = Some(*reason);
            }
        }
        found
    }
}

/// Whether the lower-cased text contains any of the phrases (compared in lower case).
pub(crate) fn says_any(lower: &str, phrases: &[&str]) -> bool {
    phrases
        .iter()
        .any(|p| lower.contains(p.to_ascii_lowercase().as_str()))
}

/// Lines after which the returned message (or its headers) follows, shared by most MTAs.
pub(crate) const RETURNED_MESSAGE_MARKERS: &[&str] = &[
    "below this line is a copy of the message",
    "this is a copy of the message",
    "original message follows",
    "original message headers",
    "----- original message -----",
    "-----original message-----",
    "--- original message",
    "original message:",
    "message headers follow",
    "returned mail follows",
    "returned message --",
    "unsent message follows",
    "header of the original message",
    "headers of the original message",
    "copy of the message header",
    "included is a copy of the message header",
    "content-type: message/rfc822",
    "content-type: text/rfc822-headers",
    "below is a copy of the original message",
    "the attachment contains the original mail headers",
    "-------original message",
    "--- the header of the original message",
    "original message header",
    "------ received message ------",
    "--- message non-delivered",
];

const GENERIC: Layout = Layout {
    starts: &[],
    ends: RETURNED_MESSAGE_MARKERS,
};

/// Lines that cap the preamble text added to a lone recipient.
const MAX_SECTION_LINES: usize = 400;
const MAX_DIAGNOSIS_LINES: usize = 30;

/// The last resort: a message that looks like a bounce, read with the shared markers.
pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    if !looks_like_bounce(email) {
        return None;
    }
    let found = read_with(email, GENERIC);
    (!found.is_empty()).then_some(found)
}

/// From a mailer daemon, about a failure, or listing failed recipients.
pub(crate) fn looks_like_bounce(email: &Email) -> bool {
    let from = email.sender_lower();
    let subject = email.subject_lower();
    let daemon = [
        "mailer-daemon",
        "postmaster",
        "mail delivery",
        "mailer_daemon",
        "mail.delivery",
    ];
    let words = [
        "undeliver",
        "delivery",
        "failure",
        "failed",
        "returned",
        "rejected",
        "bounce",
        "not delivered",
        "error",
        "problem",
    ];
    email.has_header("x-failed-recipients")
        || daemon.iter().any(|d| from.contains(d))
        || words.iter().any(|w| subject.contains(w))
}

/// The report part of a text: everything before the returned message.
pub(crate) fn report_section(text: &str) -> String {
    section_lines(text, GENERIC).join("\n")
}

fn section_lines(text: &str, layout: Layout) -> Vec<&str> {
    let mut lines = text.lines().map(|l| l.trim_end_matches('\r'));
    let mut out = Vec::new();
    if !layout.starts.is_empty() {
        let mut started = false;
        for line in lines.by_ref() {
            let lower = line.to_ascii_lowercase();
            if layout.starts.iter().any(|s| lower.contains(s)) {
                out.push(line);
                started = true;
                break;
            }
        }
        if !started {
            return Vec::new();
        }
    }
    for line in lines.take(MAX_SECTION_LINES) {
        let lower = line.to_ascii_lowercase();
        if layout.ends.iter().any(|e| lower.contains(e)) {
            break;
        }
        out.push(line);
    }
    out
}

/// Addresses the bounce itself is from or to: never a failed recipient.
fn own_addresses(email: &Email) -> Vec<String> {
    ["from", "to", "return-path", "reply-to", "sender"]
        .iter()
        .filter_map(|h| email.header(h))
        .flat_map(addresses_in)
        .map(|a| a.to_ascii_lowercase())
        .collect()
}

/// Reads the recipients and their error text from the section the layout marks.
pub(crate) fn read_with(email: &Email, layout: Layout) -> Vec<Delivery> {
    let lines = section_lines(&email.text, layout);
    if lines.is_empty() {
        return Vec::new();
    }
    let own = own_addresses(email);
    let (mut found, mut preamble) = recipients_in(&lines, &own);
    if found.is_empty() && email.header("to").is_some() {
        // Mail to oneself comes back to the failed address itself: try again taking the
        // bounce's To as a possible recipient.
        let senders = own_addresses_except_to(email);
        (found, preamble) = recipients_in(&lines, &senders);
    }
    if found.is_empty() {
        return failed_recipients_header(email, &lines);
    }
    let lone = found.len() == 1;
    found
        .into_iter()
        .map(|(mut d, text)| {
            d.diagnosis = text.join(" ").trim().to_string();
            if lone && !carries_code(&d.diagnosis) {
                d.diagnosis = format!("{} {}", preamble.join(" "), d.diagnosis);
            }
            d
        })
        .collect()
}

/// Addresses the bounce is from: never a failed recipient.
fn own_addresses_except_to(email: &Email) -> Vec<String> {
    ["from", "return-path", "sender"]
        .iter()
        .filter_map(|h| email.header(h))
        .flat_map(addresses_in)
        .map(|a| a.to_ascii_lowercase())
        .collect()
}

/// Recipient lines with the text after each, and the text before the first.
type Found<'l> = (Vec<(Delivery, Vec<String>)>, Vec<&'l str>);

fn recipients_in<'l>(lines: &[&'l str], own: &[String]) -> Found<'l> {
    let mut preamble: Vec<&str> = Vec::new();
    let mut found: Vec<(Delivery, Vec<String>)> = Vec::new();
    for line in lines {
        if let Some((addr, rest)) = recipient_on(line, own) {
            let same = found
                .last()
                .is_some_and(|(d, _)| d.recipient.eq_ignore_ascii_case(&addr));
            if !same {
                found.push((Delivery::new(addr), vec![rest]));
                continue;
            }
        }
        match found.last_mut() {
            Some((_, text)) if text.len() < MAX_DIAGNOSIS_LINES => text.push(line.to_string()),
            Some(_) => {}
            None => preamble.push(line),
        }
    }
    (found, preamble)
}

fn carries_code(text: &str) -> bool {
    codes::find_status(text, "").is_some() || codes::find_reply(text, "").is_some()
}

/// Exim and others list the failed addresses in X-Failed-Recipients.
fn failed_recipients_header(email: &Email, lines: &[&str]) -> Vec<Delivery> {
    let Some(value) = email.header("x-failed-recipients") else {
        return Vec::new();
    };
    let text = lines.join(" ");
    addresses_in(value)
        .into_iter()
        .map(|addr| {
            let mut d = Delivery::new(addr);
            d.diagnosis = text.clone();
            d
        })
        .collect()
}

/// Line starts (lower case) that introduce a header or a sender, not a failed recipient.
const NOT_RECIPIENT: &[&str] = &[
    "from:",
    "reply-to:",
    "return-path:",
    "sender:",
    "message-id:",
    "received:",
    "(generated from",
    "envelope-from",
    "x-",
    "in-reply-to:",
    "references:",
    "subject:",
    "date:",
];

/// Prefix endings (lower case, trimmed) after which an address names a failed recipient.
const RECIPIENT_CUES: &[&str] = &[
    ">>>",
    "to:",
    " to",
    "recipient:",
    "recipients:",
    "address:",
    "addresses:",
    "user:",
    "mailbox:",
    "errors:",
    "recipient",
    "failed:",
    "*",
    "-",
];

/// The address a line names as a failed recipient, and the rest of the line.
pub(crate) fn recipient_on(line: &str, own: &[String]) -> Option<(String, String)> {
    let trimmed = line.trim().trim_start_matches('>').trim_start();
    let lower = trimmed.to_ascii_lowercase();
    if NOT_RECIPIENT.iter().any(|p| lower.starts_with(p)) || trimmed.len() > 400 {
        return None;
    }
    let at = trimmed.find('@')?;
    let start = trimmed[..at]
        .char_indices()
        .rev()
        .find(|(_, c)| c.is_whitespace() || "<\"'(:;,[".contains(*c))
        .map_or(0, |(p, c)| p + c.len_utf8());
    let end = trimmed[at..]
        .find(|c: char| c.is_whitespace() || ">\"'):;,[]".contains(c))
        .map_or(trimmed.len(), |p| at + p);
    let addr = clean_address(trimmed.get(start..end)?)?;
    if own.contains(&addr.to_ascii_lowercase()) {
        return None;
    }
    let prefix = trimmed[..start]
        .trim_end_matches(['<', '"', '\'', '(', ' ', '\t'])
        .to_ascii_lowercase();
    let cued = prefix.is_empty()
        || (prefix.len() < 120 && RECIPIENT_CUES.iter().any(|c| prefix.ends_with(c)));
    if !cued {
        return None;
    }
    let rest = trimmed.get(end..).unwrap_or("");
    let rest = rest.trim_start_matches(['>', '"', '\'', ')', ':', ',', ';', ' ']);
    Some((addr, rest.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_recipient_lines() {
        let own = vec!["me@example.org".to_string()];
        assert_eq!(
            recipient_on("<bob@example.net>:", &own)
                .map(|r| r.0)
                .as_deref(),
            Some("bob@example.net")
        );
        assert_eq!(
            recipient_on("  bob@example.net", &own)
                .map(|r| r.0)
                .as_deref(),
            Some("bob@example.net")
        );
        assert_eq!(
            recipient_on("Unable to deliver message to: <bob@example.net>", &own)
                .map(|r| r.0)
                .as_deref(),
            Some("bob@example.net")
        );
        assert!(recipient_on("host said: 550 <bob@example.net> unknown", &own).is_none());
        assert!(recipient_on("<me@example.org>:", &own).is_none());
        assert!(recipient_on("From: bob@example.net", &own).is_none());
    }

    #[test]
    fn cuts_the_report_section() {
        let text = "Sorry.\n<a@example.net>:\n550 no\n--- Below this line is a copy of the message.\nTo: x@example.net";
        assert_eq!(report_section(text), "Sorry.\n<a@example.net>:\n550 no");
    }
}
