//! Amazon SES notifications delivered by email (SNS → email subscription): a JSON document per
//! message with `notificationType` Bounce, Complaint or Delivery. SES's own DSNs (sent from
//! amazonses.com) are standard RFC 3464 and go through the DSN reader.

use serde_json::Value;

use crate::feedback::Delivery;
use crate::feedback::address::clean_address;
use crate::feedback::message::Email;
use crate::feedback::reason::Reason;

pub(crate) fn read(email: &Email) -> Option<Vec<Delivery>> {
    // Inside an SNS envelope the name is escaped (`\"notificationType\"`).
    if !email.text.contains("notificationType") {
        return None;
    }
    read_notification(&notification(&email.text)?)
}

/// The recipients of one SES notification (`notificationType`, or `eventType` for event
/// publishing through a configuration set): Bounce, Complaint or Delivery.
pub(crate) fn read_notification(doc: &Value) -> Option<Vec<Delivery>> {
    let kind = doc
        .get("notificationType")
        .or_else(|| doc.get("eventType"))?
        .as_str()?;
    match kind {
        "Bounce" => Some(bounces(doc.get("bounce")?)),
        "Complaint" => Some(complaints(doc.get("complaint")?)),
        "Delivery" => Some(deliveries(doc.get("delivery")?)),
        _ => None,
    }
}

/// The notification JSON: the text from its first `{` to its last `}`, with the mail client's
/// line wrapping (newline plus one space, or Sendmail's "!" break) undone; an SNS envelope is
/// opened if present.
fn notification(text: &str) -> Option<Value> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    let raw = text.get(start..=end)?.replace("\r\n", "\n");
    let unwrap = |s: &str| s.replace("\n ", "").replace('\n', "");
    // Sendmail breaks lines longer than SMTP allows with "!", a newline and a space.
    let doc: Value = serde_json::from_str(&unwrap(&raw))
        .or_else(|_| serde_json::from_str(&unwrap(&raw.replace("!\n ", ""))))
        .ok()?;
    if let Some(inner) = doc.get("Message").and_then(Value::as_str) {
        return serde_json::from_str(inner).ok();
    }
    Some(doc)
}

fn text_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// SES's bounce sub-types, where they name a reason.
fn subtype_reason(subtype: &str) -> Option<Reason> {
    Some(match subtype {
        "Suppressed" | "OnAccountSuppressionList" => Reason::Suppressed,
        "MailboxFull" => Reason::MailboxFull,
        "MessageTooLarge" => Reason::MesgTooBig,
        "ContentRejected" => Reason::ContentError,
        "AttachmentRejected" => Reason::SecurityError,
        _ => return None,
    })
}

fn bounces(bounce: &Value) -> Vec<Delivery> {
    let reason = subtype_reason(text_of(bounce, "bounceSubType"));
    let list = bounce.get("bouncedRecipients").and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(|r| {
            let mut d = Delivery::new(clean_address(text_of(r, "emailAddress"))?);
            d.action = text_of(r, "action").to_string();
            d.status = text_of(r, "status").to_string();
            let code = text_of(r, "diagnosticCode");
            let (kind, text) = code.split_once(';').unwrap_or(("", code));
            d.diagnostic_type = kind.trim().to_string();
            d.diagnosis = text.trim().to_string();
            d.reason = reason;
            Some(d)
        })
        .collect()
}

fn complaints(complaint: &Value) -> Vec<Delivery> {
    let kind = text_of(complaint, "complaintFeedbackType");
    let kind = if kind.is_empty() { "abuse" } else { kind };
    let list = complaint
        .get("complainedRecipients")
        .and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(|r| {
            let mut d = Delivery::new(clean_address(text_of(r, "emailAddress"))?);
            d.reason = Some(Reason::Feedback);
            d.feedback_type = Some(kind.to_string());
            d.diagnosis = text_of(complaint, "userAgent").to_string();
            Some(d)
        })
        .collect()
}

fn deliveries(delivery: &Value) -> Vec<Delivery> {
    let response = text_of(delivery, "smtpResponse");
    let list = delivery.get("recipients").and_then(Value::as_array);
    list.into_iter()
        .flatten()
        .filter_map(|r| {
            let mut d = Delivery::new(clean_address(r.as_str()?)?);
            d.reason = Some(Reason::Delivered);
            d.action = "delivered".into();
            d.diagnosis = response.to_string();
            Some(d)
        })
        .collect()
}
