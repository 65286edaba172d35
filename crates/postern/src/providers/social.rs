//! Status posts through a Mastodon-compatible API: `POST /api/v1/statuses` with
//! `Authorization: Bearer TOKEN`, the text as `status`, and Postern's message id as the
//! `Idempotency-Key` header (Mastodon keeps it an hour, so a retried post is not doubled).
//! The token posts as one account; recipients are that account's handle, and any other
//! handle bounces without a request. Errors are `{"error": "..."}`.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::http::{self, wide};
use super::{
    Channel, Delivery, FailureClass, OutboundMessage, Provider, ProviderError, ProviderWideKind,
    RecipientOutcome,
};
use crate::config::ProviderConfig;

pub struct SocialProvider {
    name: String,
    client: reqwest::Client,
    base_url: String,
    token: SecretString,
    account: String,
    visibility: String,
}

/// `@Name@host` → `name@host`.
fn normalize(handle: &str) -> String {
    handle.trim().trim_start_matches('@').to_ascii_lowercase()
}

impl SocialProvider {
    pub fn new(name: &str, cfg: &ProviderConfig) -> anyhow::Result<Self> {
        let ProviderConfig::Social {
            base_url,
            access_token,
            account,
            visibility,
            timeout_secs,
        } = cfg
        else {
            anyhow::bail!("provider {name} is not a social provider");
        };
        if !matches!(
            visibility.as_str(),
            "public" | "unlisted" | "private" | "direct"
        ) {
            anyhow::bail!(
                "provider {name}: visibility must be public, unlisted, private or direct"
            );
        }
        Ok(Self {
            name: name.to_owned(),
            client: http::client(Duration::from_secs(*timeout_secs))?,
            base_url: base_url.trim_end_matches('/').to_owned(),
            token: access_token.clone(),
            account: normalize(account),
            visibility: visibility.clone(),
        })
    }

    /// Whether `handle` names the account the token posts as (`name` matches `name@host`).
    fn is_own(&self, handle: &str) -> bool {
        let h = normalize(handle);
        let local = |s: &str| s.split('@').next().unwrap_or_default().to_owned();
        let either_bare = !h.contains('@') || !self.account.contains('@');
        h == self.account || (either_bare && local(&h) == local(&self.account))
    }
}

fn classify(status: u16, message: &str) -> ProviderError {
    let text = format!("Mastodon API {status}: {message}");
    let lower = message.to_ascii_lowercase();
    // A suspended or disabled account gets 403 "Your login is currently disabled".
    if status == 403 && (lower.contains("disabled") || lower.contains("suspended")) {
        return wide(ProviderWideKind::AccountSuspended, Some(status), text);
    }
    ProviderError::new(http::class_of_status(status), Some(status), text)
}

async fn answer(resp: reqwest::Response) -> Result<Value, ProviderError> {
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        return Ok(v);
    }
    let message = v["error"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| http::snippet(&text));
    Err(classify(status, &message))
}

#[async_trait]
impl Provider for SocialProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn channel(&self) -> Channel {
        Channel::Social
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Delivery, ProviderError> {
        let text = std::str::from_utf8(&msg.raw).map_err(|_| {
            ProviderError::new(FailureClass::Permanent, None, "post text is not UTF-8")
        })?;
        let ours: Vec<&String> = msg.recipients.iter().filter(|r| self.is_own(r)).collect();
        let posted = if ours.is_empty() {
            None
        } else {
            let resp = self
                .client
                .post(format!("{}/api/v1/statuses", self.base_url))
                .bearer_auth(self.token.expose_secret())
                .header("Idempotency-Key", &msg.id)
                .form(&[("status", text), ("visibility", self.visibility.as_str())])
                .send()
                .await
                .map_err(|e| http::transport_error("Mastodon API", e))?;
            let v = answer(resp).await?;
            Some(format!(
                "status {}",
                v["url"].as_str().or(v["id"].as_str()).unwrap_or("posted")
            ))
        };
        Ok(Delivery {
            recipients: msg
                .recipients
                .iter()
                .map(|r| {
                    let o = match &posted {
                        Some(p) if self.is_own(r) => RecipientOutcome::Delivered {
                            response: p.clone(),
                        },
                        _ => RecipientOutcome::Bounced {
                            code: None,
                            reason: format!("this provider posts as @{}, not as {r}", self.account),
                        },
                    };
                    (r.clone(), o)
                })
                .collect(),
        })
    }

    /// `GET /api/v1/accounts/verify_credentials`: the token works and is the configured account's.
    async fn probe(&self) -> Result<(), ProviderError> {
        let resp = self
            .client
            .get(format!(
                "{}/api/v1/accounts/verify_credentials",
                self.base_url
            ))
            .bearer_auth(self.token.expose_secret())
            .send()
            .await
            .map_err(|e| http::transport_error("Mastodon API", e))?;
        let v = answer(resp).await?;
        let acct = v["acct"].as_str().unwrap_or_default();
        if self.is_own(acct) {
            Ok(())
        } else {
            Err(wide(
                ProviderWideKind::AuthFailed,
                None,
                format!(
                    "the token belongs to @{acct}, not to the configured @{}",
                    self.account
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(account: &str) -> SocialProvider {
        let cfg = ProviderConfig::Social {
            base_url: "https://social.example".into(),
            access_token: SecretString::from("t"),
            account: account.into(),
            visibility: "public".into(),
            timeout_secs: 5,
        };
        SocialProvider::new("s", &cfg).unwrap()
    }

    #[test]
    fn handles() {
        let p = provider("@Status@social.example");
        assert!(p.is_own("status@social.example"));
        assert!(p.is_own("@status"));
        assert!(!p.is_own("@other@social.example"));
        assert!(!p.is_own("status@elsewhere.example"));
    }

    #[test]
    fn errors() {
        assert_eq!(
            classify(403, "Your login is currently disabled").class,
            FailureClass::ProviderWide(ProviderWideKind::AccountSuspended)
        );
        assert_eq!(
            classify(401, "The access token is invalid").class,
            FailureClass::ProviderWide(ProviderWideKind::AuthFailed)
        );
        assert_eq!(
            classify(422, "Validation failed: Text can't be blank").class,
            FailureClass::Permanent
        );
    }
}
