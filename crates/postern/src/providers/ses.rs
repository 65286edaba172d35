//! Amazon SES v2 through the official AWS SDK: `SendEmail` with `Content.Raw`, the envelope
//! recipients as the destination (so Bcc works), signed with a static access key from the
//! config. `GetAccount` gives the account's enforcement status and 24-hour count. The SDK's
//! own retries are off: the queue retries, with the classification made here.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sesv2::config::http::HttpResponse;
use aws_sdk_sesv2::config::retry::RetryConfig;
use aws_sdk_sesv2::config::timeout::TimeoutConfig;
use aws_sdk_sesv2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_sesv2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_sesv2::primitives::Blob;
use aws_sdk_sesv2::types::{Destination, EmailContent, MessageTag, RawMessage};
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use secrecy::ExposeSecret;

use super::http::{Attempt, deliver_with_refusals, error_chain, wide};
use super::{
    AccountStatus, Delivery, FailureClass, OutboundMessage, Provider, ProviderError,
    ProviderWideKind,
};
use crate::config::ProviderConfig;

pub struct SesProvider {
    name: String,
    client: aws_sdk_sesv2::Client,
    configuration_set: Option<String>,
}

impl SesProvider {
    pub fn new(name: &str, cfg: &ProviderConfig) -> anyhow::Result<Self> {
        let ProviderConfig::Ses {
            region,
            access_key_id,
            secret_access_key,
            endpoint,
            configuration_set,
            timeout_secs,
        } = cfg
        else {
            anyhow::bail!("provider {name} is not an ses provider");
        };
        let timeout = Duration::from_secs(*timeout_secs);
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let credentials = Credentials::new(
            access_key_id.clone(),
            secret_access_key.expose_secret().to_owned(),
            None,
            None,
            "postern-config",
        );
        let mut conf = aws_sdk_sesv2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.clone()))
            .credentials_provider(credentials)
            .http_client(http)
            .retry_config(RetryConfig::disabled())
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeout.min(Duration::from_secs(10)))
                    .operation_timeout(timeout)
                    .build(),
            );
        if let Some(e) = endpoint {
            conf = conf.endpoint_url(e.trim_end_matches('/'));
        }
        Ok(Self {
            name: name.to_owned(),
            client: aws_sdk_sesv2::Client::from_conf(conf.build()),
            configuration_set: configuration_set.clone(),
        })
    }

    async fn attempt(&self, msg: &OutboundMessage, pending: Vec<String>) -> Attempt {
        let raw = match RawMessage::builder()
            .data(Blob::new(msg.raw.to_vec()))
            .build()
        {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Failed(ProviderError::new(
                    FailureClass::Permanent,
                    None,
                    format!("SES: {e}"),
                ));
            }
        };
        let mut req = self
            .client
            .send_email()
            .destination(
                Destination::builder()
                    .set_to_addresses(Some(pending.clone()))
                    .build(),
            )
            .content(EmailContent::builder().raw(raw).build());
        if !msg.mail_from.is_empty() {
            req = req.from_email_address(&msg.mail_from);
        }
        if let Some(cs) = &self.configuration_set {
            req = req.configuration_set_name(cs);
        }
        // Tags come back in SES event notifications, so feedback finds the message.
        if let Ok(tag) = MessageTag::builder()
            .name("postern_id")
            .value(tag_value(&msg.id))
            .build()
        {
            req = req.email_tags(tag);
        }
        match req.send().await {
            Ok(out) => Attempt::Sent(format!(
                "SES MessageId {}",
                out.message_id().unwrap_or_default()
            )),
            Err(e) => {
                let err = classify(&e);
                if err.class == FailureClass::Permanent
                    && let Some(list) = unverified_recipients(&err.message, &pending)
                {
                    let reason = err.message.clone();
                    return Attempt::Refused(
                        list.into_iter()
                            .map(|r| (r, err.code, reason.clone()))
                            .collect(),
                    );
                }
                Attempt::Failed(err)
            }
        }
    }
}

/// SES tag values allow letters, digits, `_` and `-` only.
fn tag_value(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The sandbox's MessageRejected names the recipients that are not verified:
/// "Email address is not verified. The following identities failed the check in region
/// US-EAST-1: a@x, b@y". Only pending recipients are taken.
fn unverified_recipients(message: &str, pending: &[String]) -> Option<Vec<String>> {
    let (_, list) = message.split_once("failed the check in region")?;
    let (_, list) = list.split_once(':')?;
    let named: Vec<String> = list
        .split(',')
        .map(|a| a.trim().trim_end_matches('.').to_owned())
        .filter(|a| pending.iter().any(|p| p.eq_ignore_ascii_case(a)))
        .collect();
    (!named.is_empty()).then_some(named)
}

/// One place for every SES error: the service's error code first, then the HTTP status,
/// then what kind of transport failure it was.
fn classify<E>(e: &SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    // SES v2 answers in JSON with `x-amzn-ErrorType`; an XML `<Error>` body (query-protocol
    // gateways and emulators answer auth failures that way) is read as a fallback.
    let body = e
        .raw_response()
        .and_then(|r| r.body().bytes())
        .map(String::from_utf8_lossy)
        .unwrap_or_default();
    let code = e
        .code()
        .map(str::to_owned)
        .or_else(|| xml_element(&body, "Code"))
        .unwrap_or_default();
    let detail = e
        .message()
        .map(str::to_owned)
        .or_else(|| xml_element(&body, "Message"))
        .unwrap_or_default();
    let text = |what: &str| -> String {
        let mut s = format!("SES {what}");
        if let Some(st) = status {
            s.push_str(&format!(" (HTTP {st})"));
        }
        if !code.is_empty() {
            s.push_str(&format!(": {code}"));
        }
        if !detail.is_empty() {
            s.push_str(&format!(": {detail}"));
        }
        s
    };
    match e {
        SdkError::TimeoutError(_) => {
            return ProviderError::new(FailureClass::Transient, None, text("timed out"));
        }
        SdkError::DispatchFailure(d) if d.is_timeout() => {
            return ProviderError::new(FailureClass::Transient, None, text("timed out"));
        }
        SdkError::DispatchFailure(d) if d.is_io() => {
            return wide(
                ProviderWideKind::Unavailable,
                None,
                format!("SES unreachable: {}", error_chain(e)),
            );
        }
        SdkError::DispatchFailure(_) => {
            return ProviderError::new(
                FailureClass::Transient,
                None,
                format!("SES request failed: {}", error_chain(e)),
            );
        }
        SdkError::ConstructionFailure(_) => {
            return ProviderError::new(
                FailureClass::Permanent,
                None,
                format!("SES request could not be built: {}", error_chain(e)),
            );
        }
        _ => {}
    }
    let class = match code.as_str() {
        "AccountSuspendedException" | "SendingPausedException" => {
            FailureClass::ProviderWide(ProviderWideKind::AccountSuspended)
        }
        "TooManyRequestsException"
        | "LimitExceededException"
        | "Throttling"
        | "ThrottlingException"
        | "RequestThrottled" => FailureClass::ProviderWide(ProviderWideKind::Throttled),
        "SignatureDoesNotMatch"
        | "InvalidClientTokenId"
        | "UnrecognizedClientException"
        | "IncompleteSignature"
        | "MissingAuthenticationToken"
        | "InvalidSignatureException"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "AccessDenied"
        | "AccessDeniedException" => FailureClass::ProviderWide(ProviderWideKind::AuthFailed),
        "MessageRejected"
        | "MailFromDomainNotVerifiedException"
        | "BadRequestException"
        | "NotFoundException" => FailureClass::Permanent,
        "ServiceUnavailable" | "ServiceUnavailableException" => {
            FailureClass::ProviderWide(ProviderWideKind::Unavailable)
        }
        _ => match status {
            Some(s) => super::http::class_of_status(s),
            None => FailureClass::Transient,
        },
    };
    ProviderError::new(class, status, text("refused the request"))
}

/// The text of the first `<name>…</name>` in an XML error body.
fn xml_element(body: &str, name: &str) -> Option<String> {
    let (_, rest) = body.split_once(&format!("<{name}>"))?;
    let (text, _) = rest.split_once(&format!("</{name}>"))?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

#[async_trait]
impl Provider for SesProvider {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, msg: &OutboundMessage) -> Result<Delivery, ProviderError> {
        deliver_with_refusals(&msg.recipients, |pending| self.attempt(msg, pending)).await
    }

    async fn probe(&self) -> Result<(), ProviderError> {
        match self.account_status().await {
            Some(Ok(s)) => match s.failure() {
                None => Ok(()),
                Some(kind) => Err(wide(
                    kind,
                    None,
                    format!(
                        "SES account: sending enabled {}, enforcement status {}",
                        s.sending_enabled,
                        s.enforcement.as_deref().unwrap_or("unknown")
                    ),
                )),
            },
            Some(Err(e)) => Err(e),
            None => Ok(()),
        }
    }

    /// `GetAccount`: `SendingEnabled`, `EnforcementStatus` (HEALTHY, PROBATION, SHUTDOWN) and
    /// `SendQuota.SentLast24Hours`.
    async fn account_status(&self) -> Option<Result<AccountStatus, ProviderError>> {
        let result = match self.client.get_account().send().await {
            Ok(a) => Ok(AccountStatus {
                sending_enabled: a.sending_enabled(),
                enforcement: a.enforcement_status().map(str::to_owned),
                sent_last_24h: a
                    .send_quota()
                    .map(|q| q.sent_last24_hours().max(0.0).round() as u64),
            }),
            Err(e) => Err(classify(&e)),
        };
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_rejection_names_recipients() {
        let m = "SES refused the request: MessageRejected: Email address is not verified. The following identities failed the check in region US-EAST-1: bob@example.org, eve@example.net";
        let pending = vec!["bob@example.org".to_owned(), "carol@example.org".to_owned()];
        assert_eq!(
            unverified_recipients(m, &pending).unwrap(),
            vec!["bob@example.org".to_owned()]
        );
        assert!(unverified_recipients("MessageRejected: spam", &pending).is_none());
    }

    #[test]
    fn xml_error_bodies() {
        let b = "<ErrorResponse><Errors><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message></Error></Errors></ErrorResponse>";
        assert_eq!(xml_element(b, "Code").unwrap(), "SignatureDoesNotMatch");
        assert!(
            xml_element(b, "Message")
                .unwrap()
                .starts_with("The request")
        );
        assert!(xml_element("{}", "Code").is_none());
    }

    #[test]
    fn tag_values_are_sanitised() {
        assert_eq!(tag_value("01ab.cd:ef"), "01ab_cd_ef");
    }
}
