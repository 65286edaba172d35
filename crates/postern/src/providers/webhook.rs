//! A signed JSON POST of each message to a URL, so a tenant (or any receiver) gets its own
//! copy. The `Postern-Signature` header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of
//! "<t>.<body>" keyed with the secret>`, as Stripe signs its webhooks; receivers recompute it
//! and reject old timestamps. The receiver may refuse single recipients by answering 2xx with
//! `{"rejected": [{"recipient": "...", "reason": "..."}]}`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use base64::Engine;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use sha2::Sha256;

use super::http;
use super::{
    Channel, Delivery, FailureClass, OutboundMessage, Provider, ProviderError, RecipientOutcome,
};
use crate::config::{ProviderConfig, redact_url};

pub const SIGNATURE_HEADER: &str = "Postern-Signature";

pub struct WebhookProvider {
    name: String,
    client: reqwest::Client,
    url: String,
    secret: SecretString,
}

/// `t=<ts>,v1=<hex>` for `body` at `ts`.
pub fn signature(secret: &[u8], ts: u64, body: &[u8]) -> String {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={ts},v1={}", hex::encode(mac.finalize().into_bytes()))
}

impl WebhookProvider {
    pub fn new(name: &str, cfg: &ProviderConfig) -> anyhow::Result<Self> {
        let ProviderConfig::Webhook {
            url,
            secret,
            timeout_secs,
        } = cfg
        else {
            anyhow::bail!("provider {name} is not a webhook provider");
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            anyhow::bail!("provider {name}: url must start with https:// or http://");
        }
        Ok(Self {
            name: name.to_owned(),
            client: http::client(Duration::from_secs(*timeout_secs))?,
            url: url.clone(),
            secret: secret.clone(),
        })
    }

    async fn post(&self, payload: &Value, idempotency_key: &str) -> Result<String, ProviderError> {
        let body = serde_json::to_vec(payload).map_err(|e| {
            ProviderError::new(FailureClass::Permanent, None, format!("webhook body: {e}"))
        })?;
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let sig = signature(self.secret.expose_secret().as_bytes(), ts, &body);
        let what = format!("webhook {}", redact_url(&self.url));
        let resp = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, sig)
            .header("Idempotency-Key", idempotency_key)
            .body(body)
            .send()
            .await
            .map_err(|e| http::transport_error(&what, e))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(text);
        }
        Err(ProviderError::new(
            http::class_of_status(status),
            Some(status),
            format!("{what} answered {status}: {}", http::snippet(&text)),
        ))
    }
}

#[async_trait]
impl Provider for WebhookProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Delivery, ProviderError> {
        let mut payload = json!({
            "type": "message",
            "id": msg.id,
            "tenant": msg.tenant_id,
            "channel": msg.channel.as_str(),
            "from": msg.mail_from,
            "recipients": msg.recipients,
            "message_id": msg.message_id_header,
        });
        if let Some(o) = payload.as_object_mut() {
            match (msg.channel, std::str::from_utf8(&msg.raw)) {
                (Channel::Sms | Channel::Social, Ok(text)) => {
                    o.insert("text".into(), json!(text));
                }
                _ => {
                    let b64 = base64::engine::general_purpose::STANDARD.encode(&msg.raw);
                    o.insert("raw_base64".into(), json!(b64));
                }
            }
        }
        let answer = self.post(&payload, &msg.id).await?;
        let v: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
        let rejected: Vec<(String, String)> = v["rejected"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|r| {
                        Some((
                            r["recipient"].as_str()?.to_owned(),
                            r["reason"]
                                .as_str()
                                .unwrap_or("rejected by the receiver")
                                .to_owned(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Delivery {
            recipients: msg
                .recipients
                .iter()
                .map(|r| {
                    let o = match rejected.iter().find(|(x, _)| x.eq_ignore_ascii_case(r)) {
                        Some((_, reason)) => RecipientOutcome::Bounced {
                            code: None,
                            reason: format!("webhook receiver: {reason}"),
                        },
                        None => RecipientOutcome::Delivered {
                            response: "webhook 2xx".into(),
                        },
                    };
                    (r.clone(), o)
                })
                .collect(),
        })
    }

    /// A signed `{"type": "probe"}` POST; the receiver answers 2xx.
    async fn probe(&self) -> Result<(), ProviderError> {
        self.post(&json!({"type": "probe"}), "probe")
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_of_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"a":1}' | openssl dgst -sha256 -hmac whsec
        let s = signature(b"whsec", 1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            s,
            "t=1700000000,v1=8ad37ba156048ae0e0a5533c75cdf26fee88b07f93cb57ee4c80adb053012032"
        );
    }
}
