//! Turns what a client sent into the exact bytes that will be delivered: a JSON send request
//! becomes a MIME message (lettre's builder); an SMTP submission is checked (mail-parser) and
//! given the headers every message must carry.

mod body;

use std::str::FromStr;

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use postern_api::SendMessageRequest;

use crate::domain::EmailAddress;

/// A message ready for the queue.
#[derive(Debug, Clone)]
pub struct Composed {
    pub raw: Vec<u8>,
    pub message_id: String,
    pub mail_from: String,
    /// The addresses of the `From` header (for a JSON request, `mail_from` itself).
    pub from_header: Vec<String>,
    pub recipients: Vec<String>,
    pub subject: Option<String>,
}

/// Why a message was refused. `code()` is the API error code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ComposeError {
    #[error("{field}: invalid address {value:?}: {reason}")]
    InvalidAddress {
        field: &'static str,
        value: String,
        reason: String,
    },
    #[error("at least one recipient is required in to, cc or bcc")]
    NoRecipients,
    #[error("too many recipients: {0} (limit {1})")]
    TooManyRecipients(usize, usize),
    #[error("{0} contains a line break or control character (header injection)")]
    HeaderInjection(String),
    #[error("header {0:?} is set by Postern and cannot be given in headers")]
    ReservedHeader(String),
    #[error("invalid header name {0:?}: use printable ASCII without ':' or spaces")]
    InvalidHeaderName(String),
    #[error("header {0:?} is given twice (names are case-insensitive)")]
    DuplicateHeader(String),
    #[error(
        "the {0} header would have a line of more than 998 characters with no space to fold it at (RFC 5322 2.1.1)"
    )]
    HeaderTooLong(String),
    #[error("a message needs text, html, or both")]
    NoBody,
    #[error("invalid tag {0:?}: tags are 1-64 printable characters, at most 10 per message")]
    InvalidTag(String),
    #[error("the message is not valid RFC 5322: {0}")]
    Malformed(String),
    #[error("could not build the message: {0}")]
    Build(String),
}

impl ComposeError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidAddress { .. } => "invalid_address",
            Self::NoRecipients => "no_recipients",
            Self::TooManyRecipients(..) => "too_many_recipients",
            Self::HeaderInjection(_) => "header_injection",
            Self::ReservedHeader(_) => "reserved_header",
            Self::InvalidHeaderName(_) => "invalid_header_name",
            Self::DuplicateHeader(_) => "duplicate_header",
            Self::HeaderTooLong(_) => "header_too_long",
            Self::NoBody => "missing_body",
            Self::InvalidTag(_) => "invalid_tag",
            Self::Malformed(_) => "malformed_message",
            Self::Build(_) => "invalid_message",
        }
    }
}

/// Headers that the builder writes from the structured fields.
const RESERVED: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "subject",
    "message-id",
    "date",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "sender",
    "return-path",
    "received",
];

fn no_control(field: &str, v: &str) -> Result<(), ComposeError> {
    if v.chars().any(|c| c.is_control() && c != '\t') {
        Err(ComposeError::HeaderInjection(field.to_owned()))
    } else {
        Ok(())
    }
}

/// Parses `a@b.c` or `Name <a@b.c>`.
fn mailbox(field: &'static str, raw: &str) -> Result<(Mailbox, EmailAddress), ComposeError> {
    no_control(field, raw)?;
    let bad = |reason: String| ComposeError::InvalidAddress {
        field,
        value: raw.to_owned(),
        reason,
    };
    let raw = raw.trim();
    if is_bare_dot_atom_address(raw) {
        // A plain `local@domain` has no display name, comment or quoting for the RFC 2822
        // mailbox grammar to read, so the address check alone decides. lettre's full mailbox
        // parser was about a sixth of an accept's composing time; it still reads anything
        // else. A property test below checks both ways agree on such strings.
        let addr = EmailAddress::parse(raw).map_err(|e| bad(e.to_string()))?;
        let email = lettre::Address::from_str(addr.as_str()).map_err(|e| bad(e.to_string()))?;
        return Ok((Mailbox::new(None, email), addr));
    }
    full_mailbox(raw).map_err(bad)
}

/// Any mailbox (`Name <a@b.c>`, quoted local parts, comments) through lettre's RFC 2822 parser.
fn full_mailbox(raw: &str) -> Result<(Mailbox, EmailAddress), String> {
    let mb = Mailbox::from_str(raw).map_err(|e| e.to_string())?;
    let addr = EmailAddress::parse(mb.email.as_ref()).map_err(|e| e.to_string())?;
    Ok((mb, addr))
}

/// True for `local@domain` written with RFC 5322 atom characters and dots only: one `@`, no
/// space, quote, angle bracket, parenthesis or other special. Such a string is an addr-spec
/// and nothing else in the mailbox grammar.
fn is_bare_dot_atom_address(s: &str) -> bool {
    const ATEXT_SPECIALS: &[u8] = b"!#$%&'*+-/=?^_`{|}~.";
    s.bytes().filter(|&b| b == b'@').count() == 1
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'@' || ATEXT_SPECIALS.contains(&b))
}

pub fn new_message_id(hostname: &str) -> String {
    format!(
        "<{}@{}>",
        crate::domain::new_message_uuid().simple(),
        hostname
    )
}

/// Builds the MIME message for a JSON send request.
pub fn compose(
    req: &SendMessageRequest,
    hostname: &str,
    max_recipients: usize,
) -> Result<Composed, ComposeError> {
    let (from_mb, from_addr) = mailbox("from", &req.from)?;
    let from_envelope = from_mb.email.clone();
    no_control("subject", &req.subject)?;
    let message_id = new_message_id(hostname);
    let mut b = lettre::Message::builder()
        .from(from_mb)
        .subject(req.subject.clone())
        .message_id(Some(message_id.clone()));

    // Each recipient once, as text for the store and as the address already parsed for the
    // envelope.
    // Each recipient once (case-insensitively; its first mention decides its header), parsed
    // and counted before any goes into the builder: lettre re-reads a header for each address
    // added to it, so a long list is quadratic work there.
    let mut recipients: Vec<String> = Vec::new();
    let mut envelope_to: Vec<lettre::Address> = Vec::new();
    let mut in_headers: Vec<(&'static str, Mailbox)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (field, list) in [("to", &req.to), ("cc", &req.cc), ("bcc", &req.bcc)] {
        for r in list {
            let (mb, a) = mailbox(field, r)?;
            if !seen.insert(a.as_str().to_ascii_lowercase()) {
                continue;
            }
            recipients.push(a.as_str().to_owned());
            envelope_to.push(mb.email.clone());
            // Bcc recipients go in the envelope only, never in a header.
            if field != "bcc" {
                in_headers.push((field, mb));
            }
        }
    }
    if recipients.is_empty() {
        return Err(ComposeError::NoRecipients);
    }
    if recipients.len() > max_recipients {
        return Err(ComposeError::TooManyRecipients(
            recipients.len(),
            max_recipients,
        ));
    }
    for (field, mb) in in_headers {
        b = if field == "to" { b.to(mb) } else { b.cc(mb) };
    }
    if let Some(rt) = &req.reply_to {
        b = b.reply_to(mailbox("reply_to", rt)?.0);
    }
    if req.tags.len() > 10 {
        return Err(ComposeError::InvalidTag(format!("{} tags", req.tags.len())));
    }
    for t in &req.tags {
        if t.is_empty() || t.chars().count() > 64 || t.chars().any(char::is_control) {
            return Err(ComposeError::InvalidTag(t.clone()));
        }
    }
    let mut names = std::collections::HashSet::new();
    for (name, value) in &req.headers {
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_graphic() && c != b':') {
            return Err(ComposeError::InvalidHeaderName(name.clone()));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED.contains(&lower.as_str()) {
            return Err(ComposeError::ReservedHeader(name.clone()));
        }
        // lettre keeps one header of a name; a second would be dropped without a word.
        if !names.insert(lower) {
            return Err(ComposeError::DuplicateHeader(name.clone()));
        }
        no_control(&format!("header {name}"), value)?;
        let hn = HeaderName::new_from_ascii(name.clone())
            .map_err(|_| ComposeError::InvalidHeaderName(name.clone()))?;
        b = b.raw_header(HeaderValue::new(hn, value.clone()));
    }
    b = b.envelope(
        lettre::address::Envelope::new(Some(from_envelope), envelope_to)
            .map_err(|e| ComposeError::Build(e.to_string()))?,
    );
    let msg = match (&req.text, &req.html) {
        (Some(t), Some(h)) => b.multipart(MultiPart::alternative_plain_html(
            body::text_body(t),
            body::text_body(h),
        )),
        (Some(t), None) => b.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(body::text_body(t)),
        ),
        (None, Some(h)) => b.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(body::text_body(h)),
        ),
        (None, None) => return Err(ComposeError::NoBody),
    }
    .map_err(|e| ComposeError::Build(e.to_string()))?;
    let raw = msg.formatted();
    if let Some(name) = overlong_header(&raw) {
        return Err(ComposeError::HeaderTooLong(name));
    }
    let mail_from = from_addr.as_str().to_owned();
    Ok(Composed {
        raw,
        message_id,
        from_header: vec![mail_from.clone()],
        mail_from,
        recipients,
        subject: Some(req.subject.clone()),
    })
}

/// RFC 5322 2.1.1: no line of a message may exceed 998 characters. lettre folds a header only
/// at a space, so one long word (in the subject, a display name, a custom header) would stay
/// on one line. The name of the first header with such a line, if any.
fn overlong_header(raw: &[u8]) -> Option<String> {
    let head_end = memchr::memmem::find(raw, b"\r\n\r\n").unwrap_or(raw.len());
    let mut name = "";
    for line in raw[..head_end].split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            name = line
                .iter()
                .position(|&b| b == b':')
                .and_then(|i| std::str::from_utf8(&line[..i]).ok())
                .unwrap_or("");
        }
        if line.len() > 998 {
            return Some(name.to_owned());
        }
    }
    None
}

/// Checks an SMTP-submitted message and adds the Message-ID and Date a message must carry
/// when the client left them out.
pub fn prepare_submission(
    data: Vec<u8>,
    mail_from: String,
    recipients: Vec<String>,
    hostname: &str,
) -> Result<Composed, ComposeError> {
    let parsed = mail_parser::MessageParser::default()
        .parse_headers(&data)
        .ok_or_else(|| ComposeError::Malformed("no header section".into()))?;
    if parsed.headers().is_empty() {
        return Err(ComposeError::Malformed("no header section".into()));
    }
    let Some(from) = parsed.from() else {
        return Err(ComposeError::Malformed("no From header".into()));
    };
    // RFC 5322 3.6: exactly one From field. With two, a reader may take either, and the one
    // checked against the key's sender domains need not be the one a provider sends as.
    if parsed
        .header_values(mail_parser::HeaderName::From)
        .nth(1)
        .is_some()
    {
        return Err(ComposeError::Malformed("more than one From header".into()));
    }
    let from_header: Vec<String> = from
        .iter()
        .filter_map(|a| a.address())
        .map(str::to_owned)
        .collect();
    let subject = parsed.subject().map(str::to_owned);
    let mut prefix = String::new();
    let message_id = match parsed.message_id() {
        Some(id) => format!("<{id}>"),
        None => {
            let id = new_message_id(hostname);
            prefix.push_str(&format!("Message-ID: {id}\r\n"));
            id
        }
    };
    if parsed.date().is_none() {
        let now = time::OffsetDateTime::now_utc();
        let date = now
            .format(&time::format_description::well_known::Rfc2822)
            .unwrap_or_default();
        prefix.push_str(&format!("Date: {date}\r\n"));
    }
    let raw = if prefix.is_empty() {
        data
    } else {
        let mut v = prefix.into_bytes();
        v.extend_from_slice(&data);
        v
    };
    Ok(Composed {
        raw,
        message_id,
        mail_from,
        from_header,
        recipients,
        subject,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The shortcut for a bare `local@domain` accepts, refuses and renders exactly what
        /// lettre's full mailbox parser does.
        #[test]
        fn bare_addresses_read_as_the_full_parser_reads_them(
            raw in "[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~@-]{0,20}@([a-z0-9-]{1,10}\\.[a-z]{2,5}|[a-z0-9.@-]{0,12})",
        ) {
            let fast = mailbox("to", &raw);
            let full = full_mailbox(raw.trim());
            prop_assert_eq!(fast.is_ok(), full.is_ok(), "{:?}: fast {:?} full {:?}", raw, fast, full);
            if let (Ok((fm, fa)), Ok((m, a))) = (fast, full) {
                prop_assert_eq!(fm.to_string(), m.to_string());
                prop_assert_eq!(fa, a);
            }
        }
    }

    #[test]
    fn bare_address_shortcut_covers_only_addr_specs() {
        for yes in ["bob@example.org", "a.b+c@x.example", "o'neil@example.com"] {
            assert!(is_bare_dot_atom_address(yes), "{yes}");
        }
        for no in [
            "Bob <bob@example.org>",
            "\"a b\"@x.org",
            "a@b@c.org",
            "a(c)@x.org",
            "noat",
            "a@[1.2.3.4]",
        ] {
            assert!(!is_bare_dot_atom_address(no), "{no}");
        }
    }

    fn req() -> SendMessageRequest {
        serde_json::from_str(r#"{"from":"App <app@example.com>","to":["a@example.org"],"bcc":["hidden@example.net"],"subject":"Hi","text":"hello"}"#).unwrap()
    }

    #[test]
    fn builds_a_message_with_bcc_only_in_the_envelope() {
        let c = compose(&req(), "node.test", 100).unwrap();
        let raw = String::from_utf8(c.raw).unwrap();
        assert!(raw.contains("Message-ID: <"), "{raw}");
        assert!(raw.contains("Subject: Hi"));
        assert!(!raw.to_ascii_lowercase().contains("hidden@"), "{raw}");
        assert_eq!(c.recipients, vec!["a@example.org", "hidden@example.net"]);
        assert_eq!(c.mail_from, "app@example.com");
    }

    #[test]
    fn each_recipient_once_and_the_limit_counts_distinct_addresses() {
        let mut r = req();
        r.to = vec![
            "a@example.org".into(),
            "A@Example.org".into(),
            "b@example.org".into(),
        ];
        r.cc = vec!["a@example.org".into(), "c@example.org".into()];
        r.bcc = vec!["b@example.org".into()];
        let c = compose(&r, "h", 3).unwrap();
        assert_eq!(
            c.recipients,
            vec!["a@example.org", "b@example.org", "c@example.org"]
        );
        let raw = String::from_utf8(c.raw).unwrap();
        assert!(
            raw.contains("To: a@example.org, b@example.org\r\n"),
            "{raw}"
        );
        assert!(raw.contains("Cc: c@example.org\r\n"), "{raw}");
        assert_eq!(
            compose(&r, "h", 2).unwrap_err().code(),
            "too_many_recipients"
        );
    }

    #[test]
    fn refuses_injection_and_reserved_headers() {
        let mut r = req();
        r.subject = "Hi\r\nBcc: victim@example.com".into();
        assert_eq!(
            compose(&r, "h", 100).unwrap_err().code(),
            "header_injection"
        );
        let mut r = req();
        r.headers.insert("X-Ok".into(), "v\nInjected: yes".into());
        assert_eq!(
            compose(&r, "h", 100).unwrap_err().code(),
            "header_injection"
        );
        let mut r = req();
        r.headers.insert("Message-ID".into(), "<x@y>".into());
        assert_eq!(compose(&r, "h", 100).unwrap_err().code(), "reserved_header");
        let mut r = req();
        r.headers.insert("Bad Name".into(), "v".into());
        assert_eq!(
            compose(&r, "h", 100).unwrap_err().code(),
            "invalid_header_name"
        );
    }

    #[test]
    fn refuses_bad_recipients() {
        let mut r = req();
        r.to = vec!["not-an-address".into()];
        assert_eq!(compose(&r, "h", 100).unwrap_err().code(), "invalid_address");
        let mut r = req();
        r.to.clear();
        r.bcc.clear();
        assert_eq!(
            compose(&r, "h", 100).unwrap_err(),
            ComposeError::NoRecipients
        );
        let r = req();
        assert_eq!(
            compose(&r, "h", 1).unwrap_err(),
            ComposeError::TooManyRecipients(2, 1)
        );
    }

    #[test]
    fn submission_gets_a_message_id_and_date() {
        let c = prepare_submission(
            b"From: a@b.com\r\nSubject: s\r\n\r\nbody\r\n".to_vec(),
            "a@b.com".into(),
            vec![],
            "h",
        )
        .unwrap();
        let raw = String::from_utf8(c.raw).unwrap();
        assert!(raw.starts_with("Message-ID: <"));
        assert!(raw.contains("\r\nDate: "));
        assert_eq!(c.subject.as_deref(), Some("s"));
        let err = prepare_submission(
            b"just text without headers".to_vec(),
            "a@b.com".into(),
            vec![],
            "h",
        )
        .unwrap_err();
        assert_eq!(err.code(), "malformed_message");
    }
}
