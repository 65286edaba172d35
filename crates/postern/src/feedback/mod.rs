//! Reading what comes back: bounces (RFC 3464 DSNs and the non-standard reports real MTAs
//! write), complaints (RFC 5965 ARF) and auto-replies (RFC 3834).
//!
//! `classify` turns one raw message into one [`Reading`] per bounced recipient. The work is in
//! two halves: a *reader* (one module per MTA family, plus the standard formats and a generic
//! fallback) finds the recipients and their raw diagnostics; then [`finish`] settles the status
//! code, reply code, reason and hard/soft for each: a local delivery agent's own error (`lda`),
//! then the answering provider's own codes and phrases (`rhost`), then the general rules
//! (`reasons`). The reason rules and phrase lists are adapted from Sisimai (BSD-2-Clause), whose
//! vocabulary the readings use.
//!
//! Nothing here panics on input: all indexing is checked and all text is bounded.

mod address;
mod arf;
mod autoreply;
mod codes;
mod dsn;
mod generic;
pub mod ingest;
mod lda;
mod message;
mod mta;
mod phrases;
pub mod rates;
mod reason;
mod reasons;
mod rhost;
pub mod ses;
pub mod sns;

pub use reason::Reason;

use message::Email;

/// One bounced (or complained-about, or auto-replied) recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    /// The recipient the report is about.
    pub recipient: String,
    /// Enhanced status code (RFC 3463), e.g. `5.1.1`; a pseudo code `X.0.9nn` when the message
    /// carried none but the reason is known.
    pub status: Option<String>,
    /// SMTP reply code, e.g. `550`.
    pub reply_code: Option<String>,
    pub reason: Reason,
    /// Sending to this address again is pointless.
    pub hard_bounce: bool,
    /// ARF Feedback-Type (`abuse`, `fraud`, ...) for complaints.
    pub feedback_type: Option<String>,
    /// DSN Action: `failed`, `delayed`, `delivered`, `relayed`, `expanded`.
    pub action: Option<String>,
    /// The diagnostic text the reason was read from.
    pub diagnostic: String,
    /// Message-ID of the returned message, without angle brackets, when it came back with it.
    pub original_message_id: Option<String>,
    /// `X-Postern-*` headers of the returned message (name as written, value).
    pub postern_headers: Vec<(String, String)>,
    /// The `From` address of the returned message, when it came back with it: the sending
    /// domain orphan feedback is counted under.
    pub original_from: Option<String>,
}

/// Why a message could not be classified.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ClassifyError {
    #[error("the input is empty")]
    Empty,
    #[error("the input is not an RFC 822 message (no header section)")]
    NotAMessage,
    #[error("no bounced, complained-about or auto-replied recipient found")]
    NoRecipient,
}

/// One recipient as a reader found it, before the reason is decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub recipient: String,
    pub status: String,
    pub reply_code: String,
    pub diagnosis: String,
    /// Diagnostic-Code type: `SMTP`, `X-Unix`, ... ("" when unknown).
    pub diagnostic_type: String,
    pub action: String,
    pub command: String,
    /// A reason the reader is sure of (a complaint, an auto-reply, a provider's own verdict).
    pub reason: Option<Reason>,
    pub feedback_type: Option<String>,
}

impl Delivery {
    pub(crate) fn new(recipient: String) -> Delivery {
        Delivery {
            recipient,
            ..Delivery::default()
        }
    }
}

/// Reads one raw message and returns a reading per bounced recipient, in message order.
pub fn classify(raw: &[u8]) -> Result<Vec<Reading>, ClassifyError> {
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(ClassifyError::Empty);
    }
    let email = Email::parse(raw).ok_or(ClassifyError::NotAMessage)?;
    if !looks_like_text(raw) {
        return Err(ClassifyError::NotAMessage);
    }
    let deliveries = read_deliveries(&email);
    if deliveries.is_empty() {
        return Err(ClassifyError::NoRecipient);
    }
    let (message_id, postern, from) = original_ids(&email);
    let hosts = Hosts::of(&email);
    Ok(deliveries
        .into_iter()
        .map(|d| {
            let mut reading = finish(d, &hosts);
            reading.original_message_id = message_id.clone();
            reading.postern_headers = postern.clone();
            reading.original_from = from.clone();
            reading
        })
        .collect())
}

/// A mail message is text; mostly-binary input is not worth reading.
fn looks_like_text(raw: &[u8]) -> bool {
    let sample = &raw[..raw.len().min(4096)];
    let control = sample
        .iter()
        .filter(|b| **b < 0x20 && !matches!(**b, b'\r' | b'\n' | b'\t' | 0x1b | 0x0c))
        .count();
    control * 20 < sample.len().max(1)
}

/// A reader: None when the message is not of its kind.
type Reader = fn(&Email) -> Option<Vec<Delivery>>;

/// Tries the readers in order: complaints, auto-replies that are plainly so, the MTA families,
/// standard DSNs, auto-replies, and last the generic text reader.
fn read_deliveries(email: &Email) -> Vec<Delivery> {
    let readers: [Reader; 4] = [arf::read, mta::read, dsn::read, autoreply::read];
    for reader in readers {
        if let Some(found) = reader(email).filter(|f| !f.is_empty()) {
            return dedup(found);
        }
    }
    let found = generic::read(email)
        .filter(|f| !f.is_empty())
        .or_else(|| dsn::returned_recipient(email))
        .unwrap_or_default();
    dedup(found)
}

fn dedup(found: Vec<Delivery>) -> Vec<Delivery> {
    let mut out: Vec<Delivery> = Vec::with_capacity(found.len());
    for d in found {
        if !out
            .iter()
            .any(|o| o.recipient.eq_ignore_ascii_case(&d.recipient))
        {
            out.push(d);
        }
    }
    out
}

/// Message-ID and X-Postern-* headers of the returned message, which tie a bounce to the
/// message that caused it, and its From address.
fn original_ids(email: &Email) -> (Option<String>, Vec<(String, String)>, Option<String>) {
    let mut headers = email.returned_headers.clone();
    if headers.is_empty() {
        headers = inline_returned_headers(&email.text);
    }
    let message_id = headers
        .iter()
        .find(|(n, _)| n == "message-id")
        .map(|(_, v)| {
            v.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .filter(|v| !v.is_empty());
    let postern = headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-postern-"))
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let from = headers
        .iter()
        .find(|(n, _)| n == "from")
        .and_then(|(_, v)| address::header_address(v));
    (message_id, postern, from)
}

/// Headers of a message returned inline (no MIME part): `Message-ID:` and `X-Postern-*:` lines
/// in the text.
fn inline_returned_headers(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let lower = name.trim().to_ascii_lowercase();
        if (lower == "message-id" || lower.starts_with("x-postern-"))
            && !lower.contains(' ')
            && !out.iter().any(|(n, _): &(String, String)| *n == lower)
        {
            out.push((lower, value.trim().to_string()));
        }
    }
    out
}

/// Host names the report mentions, for telling which provider answered.
#[derive(Debug, Default)]
struct Hosts {
    /// `Remote-MTA` fields of the delivery-status parts.
    remote: Vec<String>,
    /// The reporting side: `Reporting-MTA`, the bounce's own Received headers (newest first)
    /// and the domain of its From address.
    local: Vec<String>,
}

impl Hosts {
    fn of(email: &Email) -> Hosts {
        let mut hosts = Hosts::default();
        for part in &email.status_parts {
            for line in part.lines().take(200) {
                let Some((name, value)) = line.split_once(':') else {
                    continue;
                };
                let name = name.trim();
                if name.eq_ignore_ascii_case("remote-mta") {
                    hosts.remote.extend(host_names(value));
                } else if name.eq_ignore_ascii_case("reporting-mta") {
                    hosts.local.extend(host_names(value));
                }
            }
        }
        for (name, value) in email.headers.iter().take(100) {
            if name == "received" {
                hosts.local.extend(host_names(value));
            }
        }
        // The mailer-daemon's own domain: whose system wrote the report.
        if let Some(from) = email.header("from") {
            hosts.local.extend(host_names(from));
        }
        hosts
    }
}

/// Words of `text` that look like Internet host names (`mx1.example.net`), longest first.
fn host_names(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        .map(|w| w.trim_matches('.').to_ascii_lowercase())
        .filter(|w| {
            w.len() >= 4
                && w.contains('.')
                && w.rsplit('.').next().is_some_and(|tld| {
                    tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())
                })
        })
        .take(64)
        .collect();
    out.sort_by_key(|w| std::cmp::Reverse(w.len()));
    out.dedup();
    out
}

/// Settles status, reply code, reason, hard/soft and action for one recipient, the way
/// Sisimai's `fact.Rise` does.
fn finish(d: Delivery, hosts: &Hosts) -> Reading {
    let diagnosis = tidy_diagnosis(&d.diagnosis);
    let in_text = codes::find_status(&diagnosis, "").unwrap_or_default();
    let reply_in_text = codes::find_reply(&diagnosis, &in_text).unwrap_or_default();
    let mut status = codes::prefer_status(&d.status, &in_text, &reply_in_text);
    let mut reply_code = if codes::is_reply_code(&d.reply_code) {
        d.reply_code.clone()
    } else {
        reply_in_text
    };
    let diagnostic_type = if !d.diagnostic_type.is_empty() {
        d.diagnostic_type.clone()
    } else if d.reason == Some(Reason::MailerError) {
        "X-UNIX".to_string()
    } else if matches!(d.reason, Some(Reason::Feedback | Reason::Vacation)) {
        String::new()
    } else {
        "SMTP".to_string()
    };
    let lower = diagnosis.to_ascii_lowercase();
    let command = if d.command.is_empty() {
        match codes::find_command(&diagnosis) {
            Some(c) => c.to_string(),
            // Postfix: "host mx.example.org[192.0.2.1] refused to talk to me: 421 ...", the
            // greeting was refused (as Sisimai's Postfix reader reads it).
            None if lower.contains("refused to talk to me:") => "HELO".to_string(),
            None => String::new(),
        }
    } else {
        d.command.clone()
    };
    let provider = if d.reason.is_none_or(|r| r.worth_another_look()) && !status.starts_with("2.") {
        let mut rhosts = host_names(&diagnosis);
        rhosts.extend(hosts.remote.iter().cloned());
        lda::find(&lower, &command).or_else(|| {
            rhost::find(&rhost::Facts {
                destination: d
                    .recipient
                    .rsplit_once('@')
                    .map_or("", |(_, domain)| domain),
                rhosts: &rhosts,
                lhosts: &hosts.local,
                status: &status,
                reply_code: &reply_code,
                command: &command,
                diagnosis: &diagnosis,
            })
        })
    } else {
        None
    };
    let reason = reasons::decide(&reasons::Evidence {
        preset: d.reason,
        provider,
        status: &status,
        reply_code: &reply_code,
        diagnosis: &lower,
        command: &command,
        action: &d.action,
        diagnostic_type: &diagnostic_type,
    });
    let hard_bounce = match reason {
        Reason::Delivered | Reason::Feedback | Reason::Vacation => false,
        _ => reasons::is_hard_bounce(reason, &format!("{status} {diagnosis}")),
    };
    if matches!(reason, Reason::Feedback | Reason::Vacation) {
        reply_code.clear();
    }
    if status.is_empty() {
        let text = format!("{reply_code} {diagnosis}");
        status = codes::pseudo_status(reason, codes::is_temporary(&text)).unwrap_or_default();
    }
    reply_code = agree_reply_with_status(&status, reply_code, &diagnosis);
    let action = settle_action(&d.action, reason, &status);
    Reading {
        recipient: d.recipient,
        status: Some(status).filter(|s| !s.is_empty()),
        reply_code: Some(reply_code).filter(|s| !s.is_empty()),
        reason,
        hard_bounce,
        feedback_type: d.feedback_type,
        action: Some(action).filter(|s| !s.is_empty()),
        diagnostic: diagnosis,
        original_message_id: None,
        postern_headers: Vec::new(),
        original_from: None,
    }
}

/// The reply code must be of the status code's class; otherwise look for one that is.
fn agree_reply_with_status(status: &str, reply: String, diagnosis: &str) -> String {
    let s0 = status.get(..1).unwrap_or("");
    let r0 = reply.get(..1).unwrap_or("");
    if s0 == r0 {
        return reply;
    }
    match codes::find_reply(diagnosis, s0) {
        Some(r) if !s0.is_empty() && r.starts_with(s0) => r,
        _ => String::new(),
    }
}

fn settle_action(action: &str, reason: Reason, status: &str) -> String {
    let mut action = action.trim().to_ascii_lowercase();
    const KNOWN: &[&str] = &["failed", "delayed", "delivered", "relayed", "expanded"];
    if !KNOWN.contains(&action.as_str()) {
        action = if action.starts_with("fail") || action.contains("bounce") {
            "failed".into()
        } else if action.starts_with("delay") || action.starts_with("defer") {
            "delayed".into()
        } else if action.starts_with("deliver") {
            "delivered".into()
        } else {
            String::new()
        };
    }
    match reason {
        Reason::Delivered => "delivered".into(),
        Reason::Expired => "delayed".into(),
        _ if action.is_empty() && (status.starts_with('4') || status.starts_with('5')) => {
            "failed".into()
        }
        _ => action,
    }
}

/// Joins lines, drops repeated continuation prefixes (`550-5.7.1`), and bounds the length.
fn tidy_diagnosis(raw: &str) -> String {
    const MAX: usize = 4096;
    let mut out = String::with_capacity(raw.len().min(MAX));
    for word in raw.split_whitespace() {
        if out.len() >= MAX {
            break;
        }
        if is_continuation_prefix(word) {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// `550-5.7.1` or `550-` at the start of a continued multi-line SMTP reply.
fn is_continuation_prefix(word: &str) -> bool {
    let b = word.as_bytes();
    b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b'-' && {
        let rest = &word[4..];
        rest.is_empty() || codes::is_status_code(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_binary_inputs_are_errors() {
        assert_eq!(classify(b""), Err(ClassifyError::Empty));
        assert_eq!(classify(b"  \r\n"), Err(ClassifyError::Empty));
        let binary: Vec<u8> = (0..2000u32).map(|i| (i % 7) as u8).collect();
        assert!(classify(&binary).is_err());
    }

    #[test]
    fn tidies_multiline_replies() {
        assert_eq!(
            tidy_diagnosis("550-5.7.1 This message\n550-5.7.1 was blocked\n550 5.7.1 bye"),
            "This message was blocked 550 5.7.1 bye"
        );
    }

    #[test]
    fn reads_a_plain_dsn() {
        let raw = b"From: MAILER-DAEMON@mx.example.org\r\nTo: app@example.com\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nThe mail system\r\n\r\n\
<bob@example.net>: host mx.example.net said: 550 5.1.1 <bob@example.net>: Recipient\r\n\
    address rejected: User unknown in local recipient table (in reply to RCPT TO command)\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
Final-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\
Diagnostic-Code: smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected:\r\n\
    User unknown in local recipient table\r\n\
--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <m1@example.com>\r\n\
X-Postern-Id: 0190abc\r\nSubject: Hi\r\n--b--\r\n";
        let readings = classify(raw).expect("classifies");
        assert_eq!(readings.len(), 1);
        let r = &readings[0];
        assert_eq!(r.recipient, "bob@example.net");
        assert_eq!(r.status.as_deref(), Some("5.1.1"));
        assert_eq!(r.reply_code.as_deref(), Some("550"));
        assert_eq!(r.reason, Reason::UserUnknown);
        assert!(r.hard_bounce);
        assert_eq!(r.action.as_deref(), Some("failed"));
        assert_eq!(r.original_message_id.as_deref(), Some("m1@example.com"));
        assert_eq!(
            r.postern_headers,
            vec![("x-postern-id".to_string(), "0190abc".to_string())]
        );
    }
}
