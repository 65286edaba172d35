//! Amazon SES notifications as SNS delivers them (the `Message` of an SNS notification): a JSON
//! document with `notificationType` (or `eventType`) Bounce, Complaint or Delivery. Read by the
//! same rules as the notifications that arrive by email, and tied to the message Postern sent
//! by the `postern_id` tag, the `X-Postern-Id` header or the original Message-ID.

use serde_json::Value;

use super::mta::amazonses;
use super::{ClassifyError, Hosts, Reading, finish};

/// A reading per recipient of one SES notification.
pub fn classify_notification(doc: &Value) -> Result<Vec<Reading>, ClassifyError> {
    let deliveries = amazonses::read_notification(doc)
        .filter(|d| !d.is_empty())
        .ok_or(ClassifyError::NoRecipient)?;
    let mail = doc.get("mail").unwrap_or(&Value::Null);
    let (message_id, postern) = mail_ids(mail);
    let hosts = Hosts::default();
    let from = mail
        .get("source")
        .and_then(Value::as_str)
        .and_then(super::address::header_address);
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

/// The original Message-ID and the `X-Postern-*` headers of `mail` (SES includes the headers
/// when the identity is set to), with the `postern_id` tag as `X-Postern-Id`.
fn mail_ids(mail: &Value) -> (Option<String>, Vec<(String, String)>) {
    let mut postern: Vec<(String, String)> = Vec::new();
    let tag = mail
        .pointer("/tags/postern_id/0")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|t| !t.is_empty());
    if let Some(id) = tag {
        postern.push(("x-postern-id".into(), id.to_owned()));
    }
    let mut message_id = mail
        .pointer("/commonHeaders/messageId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    for h in mail
        .get("headers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .take(200)
    {
        let (Some(name), Some(value)) = (
            h.get("name").and_then(Value::as_str),
            h.get("value").and_then(Value::as_str),
        ) else {
            continue;
        };
        let lower = name.to_ascii_lowercase();
        if lower == "message-id" && message_id.is_none() {
            message_id = Some(value.to_owned());
        } else if lower.starts_with("x-postern-") {
            postern.push((lower, value.trim().to_owned()));
        }
    }
    let message_id = message_id
        .map(|m| m.trim().trim_matches(['<', '>']).to_owned())
        .filter(|m| !m.is_empty());
    (message_id, postern)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bounce_with_tag_and_headers() {
        let doc = json!({
            "notificationType": "Bounce",
            "bounce": {"bounceType": "Permanent", "bounceSubType": "General",
                "bouncedRecipients": [{"emailAddress": "bob@example.org", "action": "failed",
                    "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]},
            "mail": {"messageId": "0100-ses", "tags": {"postern_id": ["0192abc"]},
                "headers": [{"name": "Message-ID", "value": "<m1@example.com>"}]}
        });
        let r = classify_notification(&doc).expect("reading");
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].recipient, "bob@example.org");
        assert!(r[0].hard_bounce);
        assert_eq!(r[0].original_message_id.as_deref(), Some("m1@example.com"));
        assert_eq!(
            r[0].postern_headers,
            vec![("x-postern-id".to_owned(), "0192abc".to_owned())]
        );
    }

    #[test]
    fn not_a_notification() {
        for doc in [json!({"notificationType": "Received"}), json!("text")] {
            assert!(matches!(
                classify_notification(&doc),
                Err(ClassifyError::NoRecipient)
            ));
        }
    }
}
