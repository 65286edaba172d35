//! Sendmail version 5 and other pre-DSN Sendmails: "Returned mail: ..." with a session
//! transcript and the message after "----- Unsent message follows -----". A port of Sisimai's
//! lhost/via-v5sendmail.go (BSD-2-Clause, Copyright azumakuniyuki and the sisimai development
//! team).

use crate::feedback::Delivery;
use crate::feedback::address::{addresses_in, clean_address};
use crate::feedback::codes;
use crate::feedback::message::{Email, parse_header_block};
use crate::feedback::reasons::aligned;

const START: &str = "----- transcript of session follows -----";
const ENDS: &[&str] = &[
    "----- unsent message follows -----",
    "----- no message was collected -----",
];
const MAX_LINES: usize = 400;

pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    if !email.subject_lower().starts_with("returned mail: ") {
        return None;
    }
    let lower_text = email.text.to_ascii_lowercase();
    let start = lower_text.find(START)?;
    let end = ENDS.iter().filter_map(|e| lower_text.find(e)).min()?;
    if end <= start {
        return None;
    }
    let section = email.text.get(start + START.len()..end)?;
    let returned = email.text.get(end..).unwrap_or("");

    let mut found: Vec<Delivery> = vec![Delivery::default()];
    // Text outside any SMTP exchange, by the number of recipients found so far.
    let mut other: Vec<String> = vec![String::new()];
    let mut remote_host = false;
    let mut command = "";
    for line in section.lines().take(MAX_LINES) {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix(">>> ") {
            command = codes::find_command(rest).unwrap_or("");
        }
        let names_recipient = aligned(line, &[" <", "@", ">..."])
            || line.to_ascii_uppercase().contains(">>> RCPT TO:");
        if names_recipient {
            let addr = between(line, " <", ">...")
                .or_else(|| between(line, ":<", ">"))
                .and_then(clean_address)
                .unwrap_or_default();
            if !remote_host {
                push_other(&mut other, found.len() - 1, line);
                continue;
            }
            let Some(current) = found.last_mut() else {
                continue;
            };
            if addr.eq_ignore_ascii_case(&current.recipient)
                || (command == "MAIL" && line.starts_with("<<< "))
            {
                current.diagnosis.push(' ');
                current.diagnosis.push_str(line);
                command = "";
            } else {
                if !current.recipient.is_empty() {
                    found.push(Delivery::default());
                    other.push(String::new());
                }
                let Some(d) = found.last_mut() else {
                    continue;
                };
                d.recipient = addr;
                d.diagnosis.push(' ');
                d.diagnosis.push_str(line);
                if d.command.is_empty() {
                    d.command = command.to_string();
                }
            }
        } else if line.to_ascii_lowercase().contains("while talking to ") {
            remote_host = true;
        } else if line.starts_with(">>> ") || line.starts_with("<<< ") {
            if let Some(d) = found.last_mut() {
                d.diagnosis.push(' ');
                d.diagnosis.push_str(line);
            }
        } else {
            push_other(&mut other, found.len() - 1, line);
        }
    }

    if found.iter().all(|d| d.recipient.is_empty()) {
        // No SMTP exchange named a recipient: the other lines, or the returned message's To.
        let first_other = other.first().cloned().unwrap_or_default();
        let d = found.first_mut()?;
        if let Some(addr) = addresses_in(&first_other).into_iter().next() {
            d.recipient = addr;
            d.diagnosis = first_other;
        } else {
            let headers = parse_header_block(returned.split_once('\n').map_or("", |(_, r)| r));
            let to = headers
                .iter()
                .find(|(n, _)| n == "to")
                .map(|(_, v)| v.as_str())?;
            d.recipient = addresses_in(to).into_iter().next()?;
            if d.diagnosis.trim().is_empty() {
                d.diagnosis = first_other;
            }
        }
    }
    let mut out = Vec::new();
    for (i, mut d) in found.into_iter().enumerate() {
        if d.recipient.is_empty() {
            continue;
        }
        if d.diagnosis.trim().is_empty() {
            d.diagnosis = other.get(i).cloned().unwrap_or_default();
        }
        if d.command.is_empty() {
            d.command = codes::find_command(&d.diagnosis).unwrap_or("").to_string();
        }
        d.action = "failed".to_string();
        out.push(d);
    }
    Some(out)
}

fn push_other(other: &mut [String], at: usize, line: &str) {
    if let Some(text) = other.get_mut(at) {
        text.push(' ');
        text.push_str(line);
    }
}

/// The text between `start` and the next `end` (Sisimai's `Select`).
fn between<'t>(text: &'t str, start: &str, end: &str) -> Option<&'t str> {
    let from = text.find(start)? + start.len();
    let rest = text.get(from..)?;
    rest.get(..rest.find(end)?)
}
