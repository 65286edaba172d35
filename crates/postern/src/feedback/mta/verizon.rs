//! Verizon Wireless text and picture messaging gateways (vtext.com, vzwpix.com): an "Error: "
//! line, then the original message (or its details) with the recipient in its To. After
//! Sisimai's lhost/via-verizon.go (BSD-2-Clause, Copyright azumakuniyuki and the sisimai
//! development team).

use crate::feedback::Delivery;
use crate::feedback::address::addresses_in;
use crate::feedback::message::Email;
use crate::feedback::reason::Reason;
use crate::feedback::reasons::aligned;

const BOUNDARIES: &[&str] = &["Original Message:", "Message details:"];
const USER_UNKNOWN: &[&str] = &[
    "550 - requested action not taken: no such user here",
    "no valid recipients",
];

pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    let from = email.sender_lower();
    if !(from.contains("post_master@vtext.com") || aligned(&from, &["sysadmin@", ".vzwpix.com"])) {
        return None;
    }
    let cut = BOUNDARIES
        .iter()
        .filter_map(|b| email.text.find(b).map(|p| (p, b.len())))
        .min()?;
    let report = email.text.get(..cut.0)?;
    let original = email.text.get(cut.0 + cut.1..)?;
    let mut diagnosis = String::new();
    let mut reading = false;
    for line in report.lines().take(200) {
        let line = line.trim_end_matches('\r');
        reading |= line.starts_with("Error: ");
        if reading && !line.trim().is_empty() {
            diagnosis.push(' ');
            diagnosis.push_str(line.trim());
        }
    }
    // The original's To (or, in "Message details", its "RCPT TO: ").
    let recipient = original.lines().take(200).find_map(|line| {
        let line = line.trim();
        let value = line
            .strip_prefix("To: ")
            .or_else(|| line.strip_prefix("RCPT TO: "))?;
        addresses_in(value).into_iter().next()
    })?;
    let mut d = Delivery::new(recipient);
    let lower = diagnosis.to_ascii_lowercase();
    if USER_UNKNOWN.iter().any(|p| lower.contains(p)) {
        d.reason = Some(Reason::UserUnknown);
    }
    d.diagnosis = diagnosis.trim().to_string();
    d.action = "failed".to_string();
    Some(vec![d])
}
