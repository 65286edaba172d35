//! SendGrid v3: `POST /v3/mail/send` with `Authorization: Bearer KEY` and a JSON body of
//! personalizations, from, subject, content and headers (the raw message is parsed into
//! them). Success is `202` with the id in `X-Message-Id`; errors are
//! `{"errors": [{"message", "field", "help"}]}`. A 400 whose fields point at recipients
//! (`personalizations.0.to.1.email`) bounces those recipients and sends to the others again.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::http::{self, Attempt, wide};
use super::mime::Fields;
use super::{Delivery, OutboundMessage, Provider, ProviderError, ProviderWideKind};
use crate::config::ProviderConfig;

pub struct SendgridProvider {
    name: String,
    client: reqwest::Client,
    api_key: SecretString,
    base_url: String,
}

/// The recipient lists as sent, to map an error's `field` back to an address.
struct Sent {
    to: Vec<String>,
    cc: Vec<String>,
    bcc: Vec<String>,
}

impl Sent {
    fn recipient_at(&self, field: &str) -> Option<&String> {
        let mut parts = field.split('.');
        if parts.next()? != "personalizations" || parts.next()? != "0" {
            return None;
        }
        let list = match parts.next()? {
            "to" => &self.to,
            "cc" => &self.cc,
            "bcc" => &self.bcc,
            _ => return None,
        };
        list.get(parts.next()?.parse::<usize>().ok()?)
    }
}

impl SendgridProvider {
    pub fn new(name: &str, cfg: &ProviderConfig) -> anyhow::Result<Self> {
        let ProviderConfig::Sendgrid {
            api_key,
            base_url,
            timeout_secs,
        } = cfg
        else {
            anyhow::bail!("provider {name} is not a sendgrid provider");
        };
        Ok(Self {
            name: name.to_owned(),
            client: http::client(Duration::from_secs(*timeout_secs))?,
            api_key: api_key.clone(),
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    fn body(&self, msg: &OutboundMessage, f: &Fields, pending: &[String]) -> (Value, Sent) {
        let split = f.split(pending);
        // SendGrid requires at least one `to` in a personalization.
        let (mut to, mut cc, mut bcc) = (split.to, split.cc, split.bcc);
        if to.is_empty() {
            if !bcc.is_empty() {
                to.push(bcc.remove(0));
            } else if !cc.is_empty() {
                to.push(cc.remove(0));
            }
        }
        let emails = |l: &[String]| l.iter().map(|e| json!({"email": e})).collect::<Vec<_>>();
        let mut p = Map::new();
        p.insert("to".into(), json!(emails(&to)));
        if !cc.is_empty() {
            p.insert("cc".into(), json!(emails(&cc)));
        }
        if !bcc.is_empty() {
            p.insert("bcc".into(), json!(emails(&bcc)));
        }
        // Echoed in SendGrid's event webhook, so feedback finds the message.
        p.insert(
            "custom_args".into(),
            json!({"postern_id": msg.id, "tenant": msg.tenant_id}),
        );
        let mut from = json!({"email": f.from_addr});
        if let (Some(n), Some(o)) = (&f.from_name, from.as_object_mut()) {
            o.insert("name".into(), json!(n));
        }
        let mut content = Vec::new();
        // text/plain must come first, then text/html.
        if let Some(t) = &f.text {
            content.push(json!({"type": "text/plain", "value": t}));
        }
        if let Some(h) = &f.html {
            content.push(json!({"type": "text/html", "value": h}));
        }
        if content.is_empty() {
            content.push(json!({"type": "text/plain", "value": " "}));
        }
        let headers: Map<String, Value> = f
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), json!(v)))
            .collect();
        let mut body = Map::new();
        body.insert("personalizations".into(), json!([p]));
        body.insert("from".into(), from);
        body.insert("subject".into(), json!(f.subject));
        body.insert("content".into(), json!(content));
        if !headers.is_empty() {
            body.insert("headers".into(), Value::Object(headers));
        }
        if let Some(r) = &f.reply_to_addr {
            body.insert("reply_to".into(), json!({"email": r}));
        }
        if !f.attachments.is_empty() {
            let b64 = base64::engine::general_purpose::STANDARD;
            let list: Vec<Value> = f
                .attachments
                .iter()
                .map(|a| {
                    let mut v = json!({"content": b64.encode(&a.content), "filename": a.name, "type": a.content_type, "disposition": "attachment"});
                    if let (Some(o), Some(cid)) = (v.as_object_mut(), &a.content_id) {
                        o.insert("disposition".into(), json!("inline"));
                        o.insert("content_id".into(), json!(cid.trim_start_matches("cid:")));
                    }
                    v
                })
                .collect();
            body.insert("attachments".into(), Value::Array(list));
        }
        (Value::Object(body), Sent { to, cc, bcc })
    }

    async fn attempt(&self, msg: &OutboundMessage, f: &Fields, pending: Vec<String>) -> Attempt {
        let (body, sent) = self.body(msg, f, &pending);
        let resp = self
            .client
            .post(format!("{}/v3/mail/send", self.base_url))
            .bearer_auth(self.api_key.expose_secret())
            .json(&body)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Attempt::Failed(http::transport_error("SendGrid", e)),
        };
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            let id = resp
                .headers()
                .get("x-message-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("accepted")
                .to_owned();
            return Attempt::Sent(format!("SendGrid {status} {id}"));
        }
        let text = resp.text().await.unwrap_or_default();
        let errors = parse_errors(&text);
        if status == 400 && !errors.is_empty() {
            let refused: Option<Vec<_>> = errors
                .iter()
                .map(|(m, field)| {
                    let r = sent.recipient_at(field.as_deref()?)?;
                    Some((r.clone(), Some(400), format!("SendGrid 400: {m}")))
                })
                .collect();
            if let Some(refused) = refused {
                return Attempt::Refused(refused);
            }
        }
        Attempt::Failed(classify(status, &errors, &text))
    }
}

/// `(message, field)` pairs of a SendGrid error body.
fn parse_errors(text: &str) -> Vec<(String, Option<String>)> {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    (
                        e["message"].as_str().unwrap_or_default().to_owned(),
                        e["field"].as_str().map(str::to_owned),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn classify(status: u16, errors: &[(String, Option<String>)], raw: &str) -> ProviderError {
    let message = if errors.is_empty() {
        http::snippet(raw)
    } else {
        errors
            .iter()
            .map(|(m, f)| match f {
                Some(f) => format!("{f}: {m}"),
                None => m.clone(),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let text = format!("SendGrid {status}: {message}");
    // SendGrid answers 401 "Maximum credits exceeded" when the plan's quota is used up.
    if message.to_ascii_lowercase().contains("credits exceeded") {
        return wide(ProviderWideKind::AccountSuspended, Some(status), text);
    }
    ProviderError::new(http::class_of_status(status), Some(status), text)
}

#[async_trait]
impl Provider for SendgridProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Delivery, ProviderError> {
        let fields = Fields::parse(msg)?;
        http::deliver_with_refusals(&msg.recipients, |pending| {
            self.attempt(msg, &fields, pending)
        })
        .await
    }

    /// `GET /v3/scopes`: the key works and may send mail.
    async fn probe(&self) -> Result<(), ProviderError> {
        let resp = self
            .client
            .get(format!("{}/v3/scopes", self.base_url))
            .bearer_auth(self.api_key.expose_secret())
            .send()
            .await
            .map_err(|e| http::transport_error("SendGrid", e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if !(200..300).contains(&status) {
            return Err(classify(status, &parse_errors(&text), &text));
        }
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let can_send = v["scopes"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x == "mail.send"));
        if can_send {
            Ok(())
        } else {
            Err(wide(
                ProviderWideKind::AuthFailed,
                Some(status),
                "SendGrid: the API key lacks the mail.send scope".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::FailureClass;

    #[test]
    fn fields_map_back_to_recipients() {
        let s = Sent {
            to: vec!["a@x".into(), "b@x".into()],
            cc: vec![],
            bcc: vec!["c@x".into()],
        };
        assert_eq!(
            s.recipient_at("personalizations.0.to.1.email").unwrap(),
            "b@x"
        );
        assert_eq!(
            s.recipient_at("personalizations.0.bcc.0.email").unwrap(),
            "c@x"
        );
        assert!(s.recipient_at("from.email").is_none());
        assert!(s.recipient_at("personalizations.0.to.5.email").is_none());
    }

    #[test]
    fn errors() {
        let body =
            r#"{"errors":[{"message":"Maximum credits exceeded","field":null,"help":null}]}"#;
        assert_eq!(
            classify(401, &parse_errors(body), body).class,
            FailureClass::ProviderWide(ProviderWideKind::AccountSuspended)
        );
        let body = r#"{"errors":[{"message":"The provided authorization grant is invalid, expired, or revoked","field":null,"help":null}]}"#;
        assert_eq!(
            classify(401, &parse_errors(body), body).class,
            FailureClass::ProviderWide(ProviderWideKind::AuthFailed)
        );
    }
}
