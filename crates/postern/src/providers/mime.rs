//! Turns a raw RFC 5322 message into the fields of the structured email APIs (Postmark,
//! SendGrid), which take from/subject/bodies/headers rather than MIME.

use mail_parser::{MessageParser, MimeHeaders, PartType};

use super::{FailureClass, OutboundMessage, ProviderError};

/// Headers the structured APIs carry as fields of their own (or set themselves).
const AS_FIELDS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "subject",
    "reply-to",
    "date",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "dkim-signature",
    "received",
    "return-path",
];

#[derive(Debug, Clone, Default)]
pub(crate) struct Fields {
    /// The From header as written (`Name <addr>`), decoded.
    pub from: String,
    pub from_addr: String,
    pub from_name: Option<String>,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub reply_to: Option<String>,
    pub reply_to_addr: Option<String>,
    pub subject: String,
    pub text: Option<String>,
    pub html: Option<String>,
    /// Other headers, in order (Message-ID, List-Unsubscribe, X-…).
    pub headers: Vec<(String, String)>,
    pub attachments: Vec<Attachment>,
}

#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub name: String,
    pub content_type: String,
    pub content: Vec<u8>,
    pub content_id: Option<String>,
}

/// Recipients split as the API's to/cc/bcc: those named in To and Cc stay there, the rest of
/// the envelope (Bcc) goes to bcc. Only pending recipients are included.
pub(crate) struct Split {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
}

impl Fields {
    pub fn parse(msg: &OutboundMessage) -> Result<Self, ProviderError> {
        let bad = |why: &str| {
            ProviderError::new(
                FailureClass::Permanent,
                None,
                format!("message cannot be converted: {why}"),
            )
        };
        let parsed = MessageParser::default()
            .parse(&msg.raw)
            .ok_or_else(|| bad("not a MIME message"))?;
        let addrs = |a: Option<&mail_parser::Address<'_>>| -> Vec<String> {
            a.map(|a| {
                a.iter()
                    .filter_map(|x| x.address().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
        };
        let display = |a: Option<&mail_parser::Address<'_>>| -> Option<String> {
            let first = a?.first()?;
            let addr = first.address()?;
            Some(match first.name() {
                Some(n) if !n.is_empty() => format!("{} <{addr}>", quote_name(n)),
                _ => addr.to_owned(),
            })
        };
        let from = display(parsed.from())
            .or_else(|| (!msg.mail_from.is_empty()).then(|| msg.mail_from.clone()))
            .ok_or_else(|| bad("no From address"))?;
        let first = |a: Option<&mail_parser::Address<'_>>| {
            a.and_then(|a| a.first()).and_then(|x| {
                x.address().map(|addr| {
                    (
                        addr.to_owned(),
                        x.name().filter(|n| !n.is_empty()).map(str::to_owned),
                    )
                })
            })
        };
        let (from_addr, from_name) =
            first(parsed.from()).unwrap_or_else(|| (msg.mail_from.clone(), None));

        let text = parsed.text_part(0).and_then(|p| match &p.body {
            PartType::Text(t) => Some(t.to_string()),
            _ => None,
        });
        let html = parsed.html_part(0).and_then(|p| match &p.body {
            PartType::Html(t) => Some(t.to_string()),
            _ => None,
        });
        let attachments = parsed
            .attachments()
            .filter_map(|p| {
                let content = match &p.body {
                    PartType::Binary(b) | PartType::InlineBinary(b) => b.to_vec(),
                    PartType::Text(t) | PartType::Html(t) => t.as_bytes().to_vec(),
                    PartType::Message(m) => m.raw_message().to_vec(),
                    PartType::Multipart(_) => return None,
                };
                let content_type = p
                    .content_type()
                    .map(|c| match c.subtype() {
                        Some(sub) => format!("{}/{sub}", c.ctype()),
                        None => c.ctype().to_owned(),
                    })
                    .unwrap_or_else(|| "application/octet-stream".into());
                Some(Attachment {
                    name: p.attachment_name().unwrap_or("attachment").to_owned(),
                    content_type,
                    content,
                    content_id: p.content_id().map(|c| format!("cid:{c}")),
                })
            })
            .collect();
        let headers = parsed
            .headers_raw()
            .filter(|(name, _)| !AS_FIELDS.contains(&name.to_ascii_lowercase().as_str()))
            .map(|(name, value)| (name.to_owned(), unfold(value)))
            .collect();
        Ok(Self {
            from,
            to: addrs(parsed.to()),
            cc: addrs(parsed.cc()),
            reply_to: display(parsed.reply_to()),
            reply_to_addr: first(parsed.reply_to()).map(|(a, _)| a),
            from_addr,
            from_name,
            subject: parsed.subject().unwrap_or_default().to_owned(),
            text,
            html,
            headers,
            attachments,
        })
    }

    pub fn split(&self, pending: &[String]) -> Split {
        let named = |list: &[String], r: &str| list.iter().any(|a| a.eq_ignore_ascii_case(r));
        let mut s = Split {
            to: vec![],
            cc: vec![],
            bcc: vec![],
        };
        for r in pending {
            if named(&self.to, r) {
                s.to.push(r.clone());
            } else if named(&self.cc, r) {
                s.cc.push(r.clone());
            } else {
                s.bcc.push(r.clone());
            }
        }
        s
    }
}

/// A display name as it may appear before `<addr>`: quoted when it has specials.
fn quote_name(n: &str) -> String {
    if n.chars()
        .any(|c| matches!(c, ',' | '"' | '<' | '>' | '@' | ';' | ':' | '(' | ')'))
    {
        format!("\"{}\"", n.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        n.to_owned()
    }
}

/// A raw header value on one line, as the JSON APIs want it.
fn unfold(v: &str) -> String {
    v.split(['\r', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::Channel;

    fn msg(raw: &str, rcpts: &[&str]) -> OutboundMessage {
        OutboundMessage {
            id: "m1".into(),
            tenant_id: "t".into(),
            channel: Channel::Email,
            mail_from: "app@example.com".into(),
            recipients: rcpts.iter().map(|s| s.to_string()).collect(),
            raw: raw.as_bytes().into(),
            message_id_header: "<m1@x>".into(),
        }
    }

    #[test]
    fn multipart_message_becomes_fields() {
        let raw = "From: \"Shop, Inc\" <app@example.com>\r\nTo: Bob <bob@example.org>\r\nCc: carol@example.net\r\nSubject: =?utf-8?q?Caf=C3=A9?=\r\nMessage-ID: <m1@x>\r\nX-Tag: a\r\n b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHi Bob\r\n--B\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Hi Bob</p>\r\n--B--\r\n";
        let m = msg(
            raw,
            &["bob@example.org", "carol@example.net", "dave@example.com"],
        );
        let f = Fields::parse(&m).unwrap();
        assert_eq!(f.from, "\"Shop, Inc\" <app@example.com>");
        assert_eq!(f.from_addr, "app@example.com");
        assert_eq!(f.from_name.as_deref(), Some("Shop, Inc"));
        assert_eq!(f.subject, "Café");
        assert_eq!(f.text.as_deref().map(str::trim), Some("Hi Bob"));
        assert_eq!(f.html.as_deref().map(str::trim), Some("<p>Hi Bob</p>"));
        assert!(f.headers.contains(&("X-Tag".into(), "a b".into())));
        assert!(f.headers.iter().any(|(n, _)| n == "Message-ID"));
        assert!(!f.headers.iter().any(|(n, _)| n == "Subject"));
        let s = f.split(&m.recipients);
        assert_eq!(s.to, ["bob@example.org"]);
        assert_eq!(s.cc, ["carol@example.net"]);
        assert_eq!(s.bcc, ["dave@example.com"]);
    }

    #[test]
    fn attachments_are_kept_apart_from_the_bodies() {
        let raw = "From: app@example.com\r\nTo: bob@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=M\r\n\r\n--M\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--M\r\nContent-Type: text/csv; name=\"r.csv\"\r\nContent-Disposition: attachment; filename=\"r.csv\"\r\nContent-Transfer-Encoding: base64\r\n\r\nYSxiCjEsMgo=\r\n--M--\r\n";
        let f = Fields::parse(&msg(raw, &["bob@example.org"])).unwrap();
        assert_eq!(f.text.as_deref().map(str::trim), Some("see attached"));
        assert_eq!(f.attachments.len(), 1);
        assert_eq!(f.attachments[0].name, "r.csv");
        assert_eq!(f.attachments[0].content_type, "text/csv");
        assert_eq!(f.attachments[0].content, b"a,b\n1,2\n");
    }

    #[test]
    fn html_only_has_no_text_body() {
        let raw = "From: app@example.com\r\nTo: bob@example.org\r\nSubject: x\r\nContent-Type: text/html\r\n\r\n<b>hi</b>\r\n";
        let f = Fields::parse(&msg(raw, &["bob@example.org"])).unwrap();
        assert!(f.text.is_none());
        assert!(f.html.is_some());
    }
}
