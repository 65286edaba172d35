//! Mailgun: `POST /v3/{domain}/messages.mime`, HTTP basic auth `api:KEY`, multipart form with
//! one `to` field per recipient and the raw message as the `message` file. Errors are
//! `{"message": "..."}`. Mailgun refuses the whole request when one `to` is not a valid
//! address without saying which, so such a request is split into one call per recipient.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::http::{self, wide};
use super::{
    Delivery, FailureClass, OutboundMessage, Provider, ProviderError, ProviderWideKind,
    RecipientOutcome,
};
use crate::config::ProviderConfig;

pub struct MailgunProvider {
    name: String,
    client: reqwest::Client,
    domain: String,
    api_key: SecretString,
    base_url: String,
}

enum Answer {
    Queued(String),
    /// 400 about the `to` field: some recipient is not a valid address.
    BadRecipient(ProviderError),
    Failed(ProviderError),
}

impl MailgunProvider {
    pub fn new(name: &str, cfg: &ProviderConfig) -> anyhow::Result<Self> {
        let ProviderConfig::Mailgun {
            domain,
            api_key,
            base_url,
            timeout_secs,
        } = cfg
        else {
            anyhow::bail!("provider {name} is not a mailgun provider");
        };
        Ok(Self {
            name: name.to_owned(),
            client: http::client(Duration::from_secs(*timeout_secs))?,
            domain: domain.clone(),
            api_key: api_key.clone(),
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    async fn post(&self, msg: &OutboundMessage, to: &[String]) -> Answer {
        let mut form = reqwest::multipart::Form::new();
        for r in to {
            form = form.text("to", r.clone());
        }
        // A user variable: Mailgun echoes it in its events, so feedback finds the message.
        form = form.text("v:postern-id", msg.id.clone());
        let part = match reqwest::multipart::Part::bytes(msg.raw.to_vec())
            .file_name("message.mime")
            .mime_str("message/rfc822")
        {
            Ok(p) => p,
            Err(e) => {
                return Answer::Failed(ProviderError::new(
                    FailureClass::Permanent,
                    None,
                    format!("Mailgun: {e}"),
                ));
            }
        };
        form = form.part("message", part);
        let resp = self
            .client
            .post(format!(
                "{}/v3/{}/messages.mime",
                self.base_url, self.domain
            ))
            .basic_auth("api", Some(self.api_key.expose_secret()))
            .multipart(form)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Answer::Failed(http::transport_error("Mailgun", e)),
        };
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Answer::Queued(format!("Mailgun {}", v["id"].as_str().unwrap_or("queued")));
        }
        let message = v["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| http::snippet(&text));
        let e = classify(status, &message);
        if status == 400 && message.to_ascii_lowercase().contains("'to'") {
            Answer::BadRecipient(e)
        } else {
            Answer::Failed(e)
        }
    }
}

fn classify(status: u16, message: &str) -> ProviderError {
    let text = format!("Mailgun {status}: {message}");
    let lower = message.to_ascii_lowercase();
    let suspended = ["disabled", "suspended", "not allowed to send"]
        .iter()
        .any(|w| lower.contains(w));
    match status {
        401..=403 if suspended => wide(ProviderWideKind::AccountSuspended, Some(status), text),
        _ => ProviderError::new(http::class_of_status(status), Some(status), text),
    }
}

#[async_trait]
impl Provider for MailgunProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Delivery, ProviderError> {
        let all = &msg.recipients;
        match self.post(msg, all).await {
            Answer::Queued(id) => {
                return Ok(Delivery {
                    recipients: all
                        .iter()
                        .map(|r| {
                            (
                                r.clone(),
                                RecipientOutcome::Delivered {
                                    response: id.clone(),
                                },
                            )
                        })
                        .collect(),
                });
            }
            Answer::Failed(e) => return Err(e),
            Answer::BadRecipient(e) if all.len() == 1 => {
                return Ok(Delivery {
                    recipients: vec![(
                        all[0].clone(),
                        RecipientOutcome::Bounced {
                            code: e.code,
                            reason: e.message,
                        },
                    )],
                });
            }
            Answer::BadRecipient(_) => {}
        }
        // Nothing was queued: find the refused recipients one call each.
        let mut out = Vec::with_capacity(all.len());
        let mut delivered_any = false;
        for r in all {
            let o = match self.post(msg, std::slice::from_ref(r)).await {
                Answer::Queued(id) => {
                    delivered_any = true;
                    RecipientOutcome::Delivered { response: id }
                }
                Answer::BadRecipient(e) => RecipientOutcome::Bounced {
                    code: e.code,
                    reason: e.message,
                },
                Answer::Failed(e)
                    if !delivered_any && matches!(e.class, FailureClass::ProviderWide(_)) =>
                {
                    return Err(e);
                }
                Answer::Failed(e) if e.class == FailureClass::Permanent => {
                    RecipientOutcome::Bounced {
                        code: e.code,
                        reason: e.message,
                    }
                }
                Answer::Failed(e) => RecipientOutcome::Deferred {
                    code: e.code,
                    reason: e.message,
                },
            };
            out.push((r.clone(), o));
        }
        Ok(Delivery { recipients: out })
    }

    async fn probe(&self) -> Result<(), ProviderError> {
        let resp = self
            .client
            .get(format!("{}/v3/domains/{}", self.base_url, self.domain))
            .basic_auth("api", Some(self.api_key.expose_secret()))
            .send()
            .await
            .map_err(|e| http::transport_error("Mailgun", e))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(());
        }
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        Err(classify(
            status,
            v["message"].as_str().unwrap_or(&http::snippet(&text)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(
            classify(401, "Forbidden").class,
            FailureClass::ProviderWide(ProviderWideKind::AuthFailed)
        );
        assert_eq!(
            classify(403, "Domain example.com is disabled").class,
            FailureClass::ProviderWide(ProviderWideKind::AccountSuspended)
        );
        assert_eq!(
            classify(429, "Too many requests").class,
            FailureClass::ProviderWide(ProviderWideKind::Throttled)
        );
        assert_eq!(
            classify(400, "'from' parameter is missing").class,
            FailureClass::Permanent
        );
    }
}
