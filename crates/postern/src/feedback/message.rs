//! A bounce message reduced to what the readers need: its headers, the human-readable text of
//! the report, the machine-readable report parts, and the headers of the message it returns.
//! MIME is left to `mail-parser`; everything here is bounded so hostile input stays cheap.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// Text beyond this is not read: reports are short, and the rest is the returned message.
const MAX_TEXT: usize = 512 * 1024;

#[derive(Debug, Default)]
pub(crate) struct Email {
    /// Top-level headers: lower-cased name, unfolded value.
    pub headers: Vec<(String, String)>,
    /// The decoded Subject.
    pub subject: String,
    /// The human-readable text of the report (text/plain parts, or HTML stripped of tags).
    pub text: String,
    /// Bodies of message/delivery-status parts (RFC 3464).
    pub status_parts: Vec<String>,
    /// Bodies of message/feedback-report parts (RFC 5965).
    pub feedback_parts: Vec<String>,
    /// Headers of the returned message (message/rfc822 or text/rfc822-headers), if any.
    pub returned_headers: Vec<(String, String)>,
    /// Top-level Content-Type, lower-cased, with parameters.
    pub content_type: String,
}

impl Email {
    pub(crate) fn parse(raw: &[u8]) -> Option<Email> {
        // mail-parser 0.11 reaches a `debug_assert!` ("Invalid part ID, could not find
        // multipart") on some deeply nested, truncated multiparts (found by
        // tests/properties.rs); builds with debug assertions would panic there. Such input is
        // not a message we can read.
        let message = std::panic::catch_unwind(|| MessageParser::default().parse(raw)).ok()??;
        if message.headers().is_empty() {
            return None;
        }
        let mut email = Email {
            headers: unfolded_headers(&message),
            subject: message.subject().unwrap_or("").to_string(),
            ..Email::default()
        };
        email.content_type = email
            .header("content-type")
            .unwrap_or("")
            .to_ascii_lowercase();
        email.collect_parts(&message);
        if email.text.trim().is_empty() && email.status_parts.is_empty() {
            // A multipart report whose boundaries were lost: read the body as text.
            email.text = bounded(&String::from_utf8_lossy(raw_body(raw)));
        }
        email.find_inline_status();
        Some(email)
    }

    /// The first value of a header (name in lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    /// The From header, lower-cased ("" when absent).
    pub(crate) fn sender_lower(&self) -> String {
        self.header("from").unwrap_or("").to_ascii_lowercase()
    }

    pub(crate) fn subject_lower(&self) -> String {
        self.subject.to_ascii_lowercase()
    }

    /// Whether any top-level header value (name in lower case) contains `needle` (lower case).
    pub(crate) fn header_contains(&self, name: &str, needle: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, v)| n == name && v.to_ascii_lowercase().contains(needle))
    }

    fn collect_parts(&mut self, message: &Message<'_>) {
        let mut html = String::new();
        for part in &message.parts {
            let (ctype, subtype) = part
                .content_type()
                .map(|ct| {
                    (
                        ct.ctype().to_ascii_lowercase(),
                        ct.subtype().unwrap_or("").to_ascii_lowercase(),
                    )
                })
                .unwrap_or_else(|| ("text".into(), "plain".into()));
            match &part.body {
                PartType::Message(inner) => {
                    if self.returned_headers.is_empty() {
                        self.returned_headers = unfolded_headers(inner);
                    }
                }
                PartType::Multipart(_) => {}
                PartType::Html(body) => push_bounded(&mut html, &strip_tags(body)),
                PartType::Text(body) => self.take_text(&ctype, &subtype, body),
                PartType::Binary(body) | PartType::InlineBinary(body) => {
                    let body = String::from_utf8_lossy(body);
                    self.take_text(&ctype, &subtype, &body);
                }
            }
        }
        if self.text.trim().is_empty() {
            self.text = html;
        }
    }

    fn take_text(&mut self, ctype: &str, subtype: &str, body: &str) {
        match (ctype, subtype) {
            ("message", "delivery-status" | "global-delivery-status") => {
                self.status_parts.push(bounded(body))
            }
            ("message", "feedback-report") => self.feedback_parts.push(bounded(body)),
            ("text" | "message", "rfc822-headers" | "rfc822" | "global")
                if self.returned_headers.is_empty() =>
            {
                self.returned_headers = parse_header_block(body);
            }
            ("text", _) => push_bounded(&mut self.text, body),
            _ => {}
        }
    }

    /// Some MTAs write the RFC 3464 fields into the text itself, with no MIME part for them.
    fn find_inline_status(&mut self) {
        if !self.status_parts.is_empty() {
            return;
        }
        let starts = [
            "\nReporting-MTA:",
            "\nFinal-Recipient:",
            "\nOriginal-Recipient:",
        ];
        let Some(at) = starts.iter().filter_map(|s| self.text.find(s)).min() else {
            return;
        };
        let block = self.text.get(at + 1..).unwrap_or("");
        if block.contains("Status:") || block.contains("Diagnostic-Code:") {
            self.status_parts.push(block.to_string());
        }
    }
}

/// What follows the header section of a raw message (empty when there is none).
fn raw_body(raw: &[u8]) -> &[u8] {
    let crlf = raw.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    let start = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b).unwrap_or(raw.len()),
    };
    raw.get(start..).unwrap_or(&[])
}

fn bounded(body: &str) -> String {
    let mut out = String::new();
    push_bounded(&mut out, body);
    out
}

fn push_bounded(out: &mut String, body: &str) {
    let room = MAX_TEXT.saturating_sub(out.len());
    if room == 0 {
        return;
    }
    let mut end = body.len().min(room);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    if !out.is_empty() {
        out.push('\n');
    }
    out.push_str(&body[..end]);
}

fn unfolded_headers(message: &Message<'_>) -> Vec<(String, String)> {
    message
        .headers_raw()
        .map(|(name, value)| (name.to_ascii_lowercase(), unfold(value)))
        .collect()
}

/// Joins folded header lines into one line.
pub(crate) fn unfold(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, line) in value.split('\n').enumerate() {
        let line = line.trim_end_matches('\r');
        if i > 0 {
            out.push(' ');
            out.push_str(line.trim_start());
        } else {
            out.push_str(line.trim_start());
        }
    }
    out.trim().to_string()
}

/// Reads `Name: value` lines (with folding) up to the first blank line.
pub(crate) fn parse_header_block(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines().skip_while(|l| l.trim().is_empty()) {
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            break;
        };
        if name.is_empty() || name.contains(' ') {
            break;
        }
        out.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    out
}

/// HTML to plain text, enough to read an error message: tags become line breaks.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push('\n');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
        .replace("&quot;", "\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_parts_of_a_report() {
        let raw = b"From: MAILER-DAEMON@example.org\r\nSubject: Undelivered\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nI could not deliver it.\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n\
Final-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\
--b\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <1@example.org>\r\nSubject: Hi\r\n\
--b--\r\n";
        let email = Email::parse(raw).expect("parses");
        assert!(email.text.contains("could not deliver"));
        assert_eq!(email.status_parts.len(), 1);
        assert!(email.status_parts[0].contains("Final-Recipient"));
        assert_eq!(
            email.returned_headers.first().map(|(n, _)| n.as_str()),
            Some("message-id")
        );
        assert!(email.content_type.starts_with("multipart/report"));
    }

    #[test]
    fn garbage_is_not_a_message() {
        assert!(Email::parse(b"").is_none());
    }

    #[test]
    fn unfolds_and_strips() {
        assert_eq!(unfold("a\r\n\tb\r\n c"), "a b c");
        let text = strip_tags("<p>Hello&nbsp;<b>you</b> &amp; me</p>");
        assert_eq!(
            text.split_whitespace().collect::<Vec<_>>(),
            ["Hello", "you", "&", "me"]
        );
    }
}
