//! SMS through Twilio: `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, form-encoded
//! `To`, `From` (or `MessagingServiceSid`) and `Body`, HTTP basic auth `AccountSid:AuthToken`.
//! One call per recipient. Errors are `{"code", "message", "more_info", "status"}`; the code
//! tells a bad number (that recipient bounces) from a refused account.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::http::{self, wide};
use super::{
    AccountStatus, Channel, Delivery, FailureClass, OutboundMessage, Provider, ProviderError,
    ProviderWideKind, RecipientOutcome,
};
use crate::config::ProviderConfig;

pub struct TwilioProvider {
    name: String,
    client: reqwest::Client,
    account_sid: String,
    auth_token: SecretString,
    sender: Sender,
    base_url: String,
}

enum Sender {
    From(String),
    Service(String),
}

/// Codes that are about the one `To` number, not the message or the account.
const RECIPIENT_CODES: &[i64] = &[
    21211, // invalid 'To' phone number
    21214, // 'To' cannot be reached
    21217, // phone number does not appear to be valid
    21408, // permission to send to this region is not enabled
    21608, // unverified number (trial accounts)
    21610, // recipient replied STOP
    21612, // cannot route to this number
    21614, // not a mobile number
    21635, // not a valid mobile number for this sender
];

impl TwilioProvider {
    pub fn new(name: &str, cfg: &ProviderConfig) -> anyhow::Result<Self> {
        let ProviderConfig::Twilio {
            account_sid,
            auth_token,
            from,
            messaging_service_sid,
            base_url,
            timeout_secs,
        } = cfg
        else {
            anyhow::bail!("provider {name} is not a twilio provider");
        };
        let sender = match (from, messaging_service_sid) {
            (Some(f), None) => Sender::From(f.clone()),
            (None, Some(s)) => Sender::Service(s.clone()),
            _ => {
                anyhow::bail!("provider {name}: set exactly one of from and messaging_service_sid")
            }
        };
        Ok(Self {
            name: name.to_owned(),
            client: http::client(Duration::from_secs(*timeout_secs))?,
            account_sid: account_sid.clone(),
            auth_token: auth_token.clone(),
            sender,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    fn account_url(&self) -> String {
        format!("{}/2010-04-01/Accounts/{}", self.base_url, self.account_sid)
    }

    /// `Ok(sid)` or the classified error with whether it is about this recipient only.
    async fn send_one(&self, to: &str, body: &str) -> Result<String, (ProviderError, bool)> {
        let sender = match &self.sender {
            Sender::From(f) => ("From", f.as_str()),
            Sender::Service(s) => ("MessagingServiceSid", s.as_str()),
        };
        let resp = self
            .client
            .post(format!("{}/Messages.json", self.account_url()))
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .form(&[("To", to), sender, ("Body", body)])
            .send()
            .await
            .map_err(|e| (http::transport_error("Twilio", e), false))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(format!(
                "Twilio {} {}",
                v["sid"].as_str().unwrap_or_default(),
                v["status"].as_str().unwrap_or_default()
            ));
        }
        let code = v["code"].as_i64();
        let message = v["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| http::snippet(&text));
        let about_recipient = code.is_some_and(|c| RECIPIENT_CODES.contains(&c));
        Err((classify(status, code, &message), about_recipient))
    }
}

fn classify(status: u16, code: Option<i64>, message: &str) -> ProviderError {
    let text = match code {
        Some(c) => format!("Twilio {status} (error {c}): {message}"),
        None => format!("Twilio {status}: {message}"),
    };
    let s = Some(status);
    match code {
        Some(20003) => wide(ProviderWideKind::AuthFailed, s, text),
        // Account not active (suspended, closed, out of funds).
        Some(20005) | Some(10001) | Some(21472) => {
            wide(ProviderWideKind::AccountSuspended, s, text)
        }
        Some(20429) => wide(ProviderWideKind::Throttled, s, text),
        _ => ProviderError::new(http::class_of_status(status), s, text),
    }
}

#[async_trait]
impl Provider for TwilioProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn channel(&self) -> Channel {
        Channel::Sms
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Delivery, ProviderError> {
        let body = std::str::from_utf8(&msg.raw).map_err(|_| {
            ProviderError::new(FailureClass::Permanent, None, "SMS text is not UTF-8")
        })?;
        let mut out: Vec<(String, RecipientOutcome)> = Vec::with_capacity(msg.recipients.len());
        let mut stopped: Option<ProviderError> = None;
        for to in &msg.recipients {
            if let Some(e) = &stopped {
                out.push((
                    to.clone(),
                    RecipientOutcome::Deferred {
                        code: e.code,
                        reason: e.message.clone(),
                    },
                ));
                continue;
            }
            let o = match self.send_one(to, body).await {
                Ok(sid) => RecipientOutcome::Delivered { response: sid },
                Err((e, true)) => RecipientOutcome::Bounced {
                    code: e.code,
                    reason: e.message,
                },
                Err((e, false)) if e.class == FailureClass::Permanent => {
                    RecipientOutcome::Bounced {
                        code: e.code,
                        reason: e.message,
                    }
                }
                // Nothing went out yet: the whole call fails with the provider's class. Once
                // a text went out, the others wait for a retry (no number gets two texts).
                Err((e, false))
                    if out
                        .iter()
                        .all(|(_, o)| !matches!(o, RecipientOutcome::Delivered { .. })) =>
                {
                    return Err(e);
                }
                Err((e, false)) => {
                    let o = RecipientOutcome::Deferred {
                        code: e.code,
                        reason: e.message.clone(),
                    };
                    stopped = Some(e);
                    o
                }
            };
            out.push((to.clone(), o));
        }
        Ok(Delivery { recipients: out })
    }

    async fn probe(&self) -> Result<(), ProviderError> {
        match self.account_status().await {
            Some(Ok(s)) => match s.failure() {
                None => Ok(()),
                Some(kind) => Err(wide(
                    kind,
                    None,
                    format!(
                        "Twilio account status is {}",
                        s.enforcement.unwrap_or_default()
                    ),
                )),
            },
            Some(Err(e)) => Err(e),
            None => Ok(()),
        }
    }

    /// `GET /2010-04-01/Accounts/{Sid}.json`: `status` is active, suspended or closed.
    async fn account_status(&self) -> Option<Result<AccountStatus, ProviderError>> {
        let result = async {
            let resp = self
                .client
                .get(format!("{}.json", self.account_url()))
                .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
                .send()
                .await
                .map_err(|e| http::transport_error("Twilio", e))?;
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap_or_default();
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if !(200..300).contains(&status) {
                let message = v["message"].as_str().unwrap_or(&text).to_owned();
                return Err(classify(status, v["code"].as_i64(), &message));
            }
            let state = v["status"].as_str().unwrap_or("unknown").to_owned();
            Ok(AccountStatus {
                sending_enabled: state == "active",
                enforcement: Some(state),
                sent_last_24h: None,
            })
        }
        .await;
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(
            classify(401, Some(20003), "Authenticate").class,
            FailureClass::ProviderWide(ProviderWideKind::AuthFailed)
        );
        assert_eq!(
            classify(429, Some(20429), "Too Many Requests").class,
            FailureClass::ProviderWide(ProviderWideKind::Throttled)
        );
        assert_eq!(
            classify(401, Some(20005), "Account not active").class,
            FailureClass::ProviderWide(ProviderWideKind::AccountSuspended)
        );
        assert_eq!(
            classify(400, Some(21211), "bad To").class,
            FailureClass::Permanent
        );
    }
}
