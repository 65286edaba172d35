//! Ipswitch IMail Server: "Unknown user: address" style lines, then "Original message
//! follows.".

use crate::feedback::Delivery;
use crate::feedback::address::addresses_in;
use crate::feedback::generic::{Family, Layout, says_any};
use crate::feedback::message::Email;
use crate::feedback::reason::Reason;
use crate::feedback::reasons::aligned;

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
        .is_some_and(|m| m.contains("IMail") || m.trim_start().starts_with("<SMTP32 v"))
        || email.subject_lower().starts_with("undeliverable mail")
            && email.text.contains("Original message follows.");
    if !imail {
        return None;
    }
    let found = error_lines(email);
    Some(if found.is_empty() {
        FAMILY.read(email)
    } else {
        found
    })
}

/// IMail writes one line per recipient, `<what went wrong>: <address>`, and may add the remote
/// server's answer after "Body of message generated response:". After Sisimai's
/// lhost/via-imailserver.go (BSD-2-Clause).
fn error_lines(email: &Email) -> Vec<Delivery> {
    let report = email
        .text
        .split("Original message follows.")
        .next()
        .unwrap_or("");
    let mut found: Vec<Delivery> = Vec::new();
    let mut response = String::new();
    for line in report.lines().take(400) {
        let line = line.trim_end_matches('\r');
        let names = line.find(": ").is_some_and(|p| p > 8) && aligned(line, &[": ", "@"]);
        if names || line.starts_with("undeliverable ") {
            let Some(recipient) = addresses_in(line).into_iter().next() else {
                continue;
            };
            let mut d = Delivery::new(recipient);
            d.diagnosis = line.to_string();
            found.push(d);
        } else if line.contains("Body of message generated response:") {
            response = line.to_string();
        } else if !response.is_empty() && response.len() < 4096 {
            response.push(' ');
            response.push_str(line);
        }
    }
    for d in &mut found {
        if !response.is_empty() {
            d.diagnosis = format!("{response} {}", d.diagnosis);
        }
        let lower = d.diagnosis.to_ascii_lowercase();
        d.reason = FAMILY
            .reasons
            .iter()
            .find(|(_, phrases)| says_any(&lower, phrases))
            .map(|(r, _)| *r);
        d.action = "failed".to_string();
    }
    found
}
