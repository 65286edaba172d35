//! Postmark's email API: `POST /email` with the `X-Postmark-Server-Token` header and a JSON
//! body. Postmark takes no raw MIME, so the message is parsed into From/To/Subject/bodies/
//! headers. Errors are `{"ErrorCode": n, "Message": "..."}`; code 406 names the inactive
//! (suppressed) recipients, which bounce while the others are sent again.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};

use super::http::{self, Attempt, wide};
use super::mime::Fields;
use super::{Delivery, OutboundMessage, Provider, ProviderError, ProviderWideKind};
use crate::config::ProviderConfig;

const TOKEN_HEADER: &str = "X-Postmark-Server-Token";

pub struct PostmarkProvider {
    name: String,
    client: reqwest::Client,
    token: SecretString,
    base_url: String,
    message_stream: String,
}

impl PostmarkProvider {
    pub fn new(name: &str, cfg: &ProviderConfig) -> anyhow::Result<Self> {
        let ProviderConfig::Postmark {
            server_token,
            base_url,
            message_stream,
            timeout_secs,
        } = cfg
        else {
            anyhow::bail!("provider {name} is not a postmark provider");
        };
        Ok(Self {
            name: name.to_owned(),
            client: http::client(Duration::from_secs(*timeout_secs))?,
            token: server_token.clone(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            message_stream: message_stream.clone(),
        })
    }

    fn body(&self, msg: &OutboundMessage, f: &Fields, pending: &[String]) -> Value {
        let split = f.split(pending);
        // Postmark requires To. When every pending recipient was Cc or Bcc, one of them moves
        // to To (each Bcc recipient still sees only itself).
        let (mut to, mut cc, mut bcc) = (split.to, split.cc, split.bcc);
        if to.is_empty() {
            if !bcc.is_empty() {
                to.push(bcc.remove(0));
            } else if !cc.is_empty() {
                to.push(cc.remove(0));
            }
        }
        let mut body = json!({
            "From": f.from,
            "To": to.join(", "),
            "Subject": f.subject,
            "MessageStream": self.message_stream,
            "Headers": f.headers.iter().map(|(n, v)| json!({"Name": n, "Value": v})).collect::<Vec<_>>(),
            "Metadata": {"postern_id": msg.id, "tenant": msg.tenant_id},
        });
        let set = |body: &mut Value, k: &str, v: Value| {
            if let Some(o) = body.as_object_mut() {
                o.insert(k.to_owned(), v);
            }
        };
        if !cc.is_empty() {
            set(&mut body, "Cc", json!(cc.join(", ")));
        }
        if !bcc.is_empty() {
            set(&mut body, "Bcc", json!(bcc.join(", ")));
        }
        if let Some(t) = &f.text {
            set(&mut body, "TextBody", json!(t));
        }
        if let Some(h) = &f.html {
            set(&mut body, "HtmlBody", json!(h));
        }
        if let Some(r) = &f.reply_to {
            set(&mut body, "ReplyTo", json!(r));
        }
        if !f.attachments.is_empty() {
            let b64 = base64::engine::general_purpose::STANDARD;
            let list: Vec<Value> = f
                .attachments
                .iter()
                .map(|a| {
                    let mut v = json!({"Name": a.name, "Content": b64.encode(&a.content), "ContentType": a.content_type});
                    if let (Some(o), Some(cid)) = (v.as_object_mut(), &a.content_id) {
                        o.insert("ContentID".into(), json!(cid));
                    }
                    v
                })
                .collect();
            set(&mut body, "Attachments", Value::Array(list));
        }
        body
    }

    async fn attempt(&self, msg: &OutboundMessage, f: &Fields, pending: Vec<String>) -> Attempt {
        let resp = self
            .client
            .post(format!("{}/email", self.base_url))
            .header(TOKEN_HEADER, self.token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&self.body(msg, f, &pending))
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Attempt::Failed(http::transport_error("Postmark", e)),
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = v["ErrorCode"].as_i64();
        if (200..300).contains(&status) && code.unwrap_or(0) == 0 {
            let id = v["MessageID"].as_str().unwrap_or_default();
            return Attempt::Sent(format!("Postmark MessageID {id}"));
        }
        let message = v["Message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| http::snippet(&text));
        if code == Some(406)
            && let Some(list) = inactive_addresses(&message)
        {
            let reason = format!("Postmark 406: {message}");
            return Attempt::Refused(
                list.into_iter()
                    .map(|a| (a, Some(406), reason.clone()))
                    .collect(),
            );
        }
        Attempt::Failed(classify(status, code, &message))
    }
}

/// Postmark's 406 message: "... Found inactive addresses: a@x, b@y. Inactive recipients are ..."
fn inactive_addresses(message: &str) -> Option<Vec<String>> {
    let (_, rest) = message.split_once("inactive addresses:")?;
    let list = rest.split(". ").next()?.trim().trim_end_matches('.');
    let addrs: Vec<String> = list
        .split(',')
        .map(|a| a.trim().to_owned())
        .filter(|a| a.contains('@'))
        .collect();
    (!addrs.is_empty()).then_some(addrs)
}

fn classify(status: u16, code: Option<i64>, message: &str) -> ProviderError {
    let http_code = Some(status);
    let text = match code {
        Some(c) => format!("Postmark {status} (ErrorCode {c}): {message}"),
        None => format!("Postmark {status}: {message}"),
    };
    match code {
        Some(10) => wide(ProviderWideKind::AuthFailed, http_code, text),
        // Not allowed to send (out of credits), account pending, account may not send.
        Some(405) | Some(412) | Some(413) => {
            wide(ProviderWideKind::AccountSuspended, http_code, text)
        }
        Some(429) => wide(ProviderWideKind::Throttled, http_code, text),
        Some(100) => wide(ProviderWideKind::Unavailable, http_code, text),
        _ => ProviderError::new(http::class_of_status(status), http_code, text),
    }
}

#[async_trait]
impl Provider for PostmarkProvider {
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

    async fn probe(&self) -> Result<(), ProviderError> {
        let resp = self
            .client
            .get(format!("{}/server", self.base_url))
            .header(TOKEN_HEADER, self.token.expose_secret())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| http::transport_error("Postmark", e))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = v["Message"].as_str().unwrap_or(&text).to_owned();
        Err(classify(status, v["ErrorCode"].as_i64(), &message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::FailureClass;

    #[test]
    fn inactive_list_is_read_from_the_406_message() {
        let m = "You tried to send to recipient(s) that have been marked as inactive. Found inactive addresses: a@x.org, b@y.org. Inactive recipients are ones that have generated a hard bounce, a spam complaint, or a manual suppression.";
        assert_eq!(
            inactive_addresses(m).unwrap(),
            vec!["a@x.org".to_owned(), "b@y.org".to_owned()]
        );
        assert!(inactive_addresses("nothing here").is_none());
    }

    #[test]
    fn error_codes() {
        assert_eq!(
            classify(422, Some(413), "x").class,
            FailureClass::ProviderWide(ProviderWideKind::AccountSuspended)
        );
        assert_eq!(
            classify(401, Some(10), "x").class,
            FailureClass::ProviderWide(ProviderWideKind::AuthFailed)
        );
        assert_eq!(classify(422, Some(300), "x").class, FailureClass::Permanent);
        assert_eq!(classify(500, None, "x").class, FailureClass::Transient);
    }
}
