//! Amazon SNS HTTP(S) messages, authenticated by their signature: the canonical string AWS
//! documents (its field list depends on the message type) signed with SHA1withRSA
//! (`SignatureVersion` 1) or SHA256withRSA (2) by the certificate at `SigningCertURL`. That URL
//! must be https on an allowed host (by default `sns.<region>.amazonaws.com`); certificates are
//! fetched once and kept in a bounded in-memory cache. Old messages are refused, and a message
//! id seen before is recognised so a replay within the tolerance records nothing twice.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use rustls::pki_types::{AlgorithmIdentifier, CertificateDer, InvalidSignature, alg_id};
use serde::Deserialize;

use crate::config::SesFeedbackConfig;

/// Largest certificate document fetched.
const MAX_CERT_BYTES: usize = 64 * 1024;
/// Message ids remembered for replay detection.
const SEEN_IDS: usize = 10_000;

/// The parts of an SNS message Postern reads (other fields, such as `MessageAttributes`, are
/// ignored; they are not signed).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SnsMessage {
    #[serde(rename = "Type")]
    pub kind: String,
    pub message_id: String,
    pub topic_arn: String,
    #[serde(default)]
    pub subject: Option<String>,
    pub message: String,
    pub timestamp: String,
    pub signature_version: String,
    pub signature: String,
    #[serde(rename = "SigningCertURL")]
    pub signing_cert_url: String,
    #[serde(rename = "SubscribeURL", default)]
    pub subscribe_url: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

/// Why an SNS message was refused.
#[derive(Debug, thiserror::Error)]
pub enum SnsError {
    #[error("not an SNS message: {0}")]
    Malformed(String),
    #[error("unsupported message type {0:?}")]
    UnsupportedType(String),
    #[error("unsupported SignatureVersion {0:?} (1 and 2 are supported)")]
    UnsupportedVersion(String),
    #[error("{0}")]
    UrlNotAllowed(String),
    #[error("topic {0:?} is not in [feedback.ses] topic_arns")]
    TopicNotAllowed(String),
    #[error("message timestamp {0:?} is outside the accepted window")]
    Stale(String),
    #[error("the signature does not verify against the signing certificate")]
    BadSignature,
    #[error("the signing certificate could not be fetched: {0}")]
    CertUnavailable(String),
    #[error("confirming the subscription failed: {0}")]
    ConfirmFailed(String),
}

/// Verifies SNS messages; shared by every request (certificate cache, seen ids).
pub struct SnsVerifier {
    cfg: SesFeedbackConfig,
    client: reqwest::Client,
    certs: Mutex<VecDeque<(String, Arc<Vec<u8>>)>>,
    seen: Mutex<(HashSet<String>, VecDeque<String>)>,
}

impl SnsVerifier {
    pub fn new(cfg: SesFeedbackConfig) -> anyhow::Result<Self> {
        use anyhow::Context;
        let mut builder = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .https_only(true);
        if let Some(path) = &cfg.ca_file {
            let pem = std::fs::read(path)
                .with_context(|| format!("reading [feedback.ses] ca_file {}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("[feedback.ses] ca_file {}", path.display()))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Self {
            client: builder.build().context("building the SNS HTTP client")?,
            cfg,
            certs: Mutex::new(VecDeque::new()),
            seen: Mutex::new((HashSet::new(), VecDeque::new())),
        })
    }

    /// Parses and authenticates one SNS message received at `now_ms`.
    pub async fn verify(&self, body: &[u8], now_ms: i64) -> Result<SnsMessage, SnsError> {
        let msg: SnsMessage =
            serde_json::from_slice(body).map_err(|e| SnsError::Malformed(e.to_string()))?;
        let canonical = canonical_string(&msg)?;
        // No topic listed: none accepted. Anyone can create a topic in their own AWS account,
        // and AWS signs what it publishes, so a signature alone says nothing about who sent it.
        if !self.cfg.topic_arns.contains(&msg.topic_arn) {
            return Err(SnsError::TopicNotAllowed(msg.topic_arn));
        }
        self.check_url(&msg.signing_cert_url, "SigningCertURL")?;
        let at = time::OffsetDateTime::parse(
            &msg.timestamp,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|_| SnsError::Stale(msg.timestamp.clone()))?;
        let age_ms = now_ms - (at.unix_timestamp_nanos() / 1_000_000) as i64;
        let tolerance_ms = (self.cfg.max_age_secs as i64).saturating_mul(1000);
        // A little room for clocks running ahead of ours.
        if age_ms > tolerance_ms || age_ms < -300_000 {
            return Err(SnsError::Stale(msg.timestamp));
        }
        let signature = base64::engine::general_purpose::STANDARD
            .decode(msg.signature.trim())
            .map_err(|_| SnsError::BadSignature)?;
        let der = self.certificate(&msg.signing_cert_url).await?;
        verify_signature(
            &der,
            &msg.signature_version,
            canonical.as_bytes(),
            &signature,
        )?;
        Ok(msg)
    }

    /// Whether a message with this id was processed already (SNS delivers at least once; a
    /// replay within the tolerance is recognised here).
    pub fn seen(&self, message_id: &str) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        seen.0.contains(message_id)
    }

    /// Remembers a processed message id (the oldest is forgotten past a bound).
    pub fn mark_seen(&self, message_id: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.0.insert(message_id.to_owned()) {
            seen.1.push_back(message_id.to_owned());
            while seen.1.len() > SEEN_IDS {
                if let Some(old) = seen.1.pop_front() {
                    seen.0.remove(&old);
                }
            }
        }
    }

    /// Confirms a subscription by visiting its `SubscribeURL` (held to the same host rules as
    /// the certificate URL).
    pub async fn confirm(&self, msg: &SnsMessage) -> Result<(), SnsError> {
        let url = msg
            .subscribe_url
            .as_deref()
            .ok_or_else(|| SnsError::Malformed("no SubscribeURL".into()))?;
        self.check_url(url, "SubscribeURL")?;
        let resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| SnsError::ConfirmFailed(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(SnsError::ConfirmFailed(format!(
                "SubscribeURL answered {}",
                resp.status()
            )));
        }
        Ok(())
    }

    /// An https URL on an allowed host.
    fn check_url(&self, url: &str, field: &str) -> Result<(), SnsError> {
        let parsed = reqwest::Url::parse(url)
            .map_err(|_| SnsError::UrlNotAllowed(format!("{field} is not a URL")))?;
        if parsed.scheme() != "https" {
            return Err(SnsError::UrlNotAllowed(format!("{field} must be https")));
        }
        let host = parsed.host_str().unwrap_or("");
        if !parsed.username().is_empty() || !self.host_allowed(host) {
            return Err(SnsError::UrlNotAllowed(format!(
                "{field} host {host:?} is not an allowed SNS host ([feedback.ses] allowed_cert_hosts)"
            )));
        }
        Ok(())
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        if !self.cfg.allowed_cert_hosts.is_empty() {
            return self
                .cfg
                .allowed_cert_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&host));
        }
        // sns.<region>.amazonaws.com (and the China partition's .amazonaws.com.cn)
        let Some(rest) = host.strip_prefix("sns.") else {
            return false;
        };
        let region = rest
            .strip_suffix(".amazonaws.com")
            .or_else(|| rest.strip_suffix(".amazonaws.com.cn"))
            .unwrap_or("");
        !region.is_empty()
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    }

    /// The signing certificate (DER), from the cache or fetched once.
    async fn certificate(&self, url: &str) -> Result<Arc<Vec<u8>>, SnsError> {
        if let Some(der) = self
            .certs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(u, _)| u == url)
            .map(|(_, d)| d.clone())
        {
            return Ok(der);
        }
        let unavailable = |e: String| SnsError::CertUnavailable(e);
        let mut resp = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(unavailable(format!("answered {}", resp.status())));
        }
        let mut pem = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| unavailable(e.without_url().to_string()))?
        {
            pem.extend_from_slice(&chunk);
            if pem.len() > MAX_CERT_BYTES {
                return Err(unavailable("the certificate document is too large".into()));
            }
        }
        let der = rustls_pemfile::certs(&mut pem.as_slice())
            .next()
            .and_then(Result::ok)
            .ok_or_else(|| unavailable("no PEM certificate in the answer".into()))?;
        let der = Arc::new(der.as_ref().to_vec());
        let mut certs = self.certs.lock().unwrap_or_else(|p| p.into_inner());
        certs.push_back((url.to_owned(), der.clone()));
        while certs.len() > self.cfg.cert_cache_size.max(1) {
            certs.pop_front();
        }
        Ok(der)
    }
}

/// The string SNS signs: `Name\nValue\n` for each signed field, in this order.
pub fn canonical_string(msg: &SnsMessage) -> Result<String, SnsError> {
    let missing = |f: &str| SnsError::Malformed(format!("{f} is missing"));
    let mut fields: Vec<(&str, &str)> =
        vec![("Message", &msg.message), ("MessageId", &msg.message_id)];
    match msg.kind.as_str() {
        "Notification" => {
            if let Some(s) = &msg.subject {
                fields.push(("Subject", s));
            }
            fields.push(("Timestamp", &msg.timestamp));
        }
        "SubscriptionConfirmation" | "UnsubscribeConfirmation" => {
            let url = msg
                .subscribe_url
                .as_deref()
                .ok_or_else(|| missing("SubscribeURL"))?;
            let token = msg.token.as_deref().ok_or_else(|| missing("Token"))?;
            fields.extend([
                ("SubscribeURL", url),
                ("Timestamp", &msg.timestamp),
                ("Token", token),
            ]);
        }
        other => return Err(SnsError::UnsupportedType(other.to_owned())),
    }
    fields.extend([
        ("TopicArn", msg.topic_arn.as_str()),
        ("Type", msg.kind.as_str()),
    ]);
    let mut out = String::new();
    for (name, value) in fields {
        out.push_str(name);
        out.push('\n');
        out.push_str(value);
        out.push('\n');
    }
    Ok(out)
}

/// Checks `signature` over `data` with the certificate's RSA key.
fn verify_signature(
    cert_der: &[u8],
    version: &str,
    data: &[u8],
    signature: &[u8],
) -> Result<(), SnsError> {
    let alg: &dyn rustls::pki_types::SignatureVerificationAlgorithm = match version {
        "1" => &RsaSha1,
        "2" => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        other => return Err(SnsError::UnsupportedVersion(other.to_owned())),
    };
    let der = CertificateDer::from(cert_der);
    let cert = webpki::EndEntityCert::try_from(&der)
        .map_err(|e| SnsError::CertUnavailable(format!("not a usable certificate: {e}")))?;
    cert.verify_signature(alg, data, signature)
        .map_err(|_| SnsError::BadSignature)
}

/// SHA1withRSA (PKCS #1 v1.5), which SNS still uses for `SignatureVersion` 1; webpki leaves
/// SHA-1 out, ring keeps it for legacy verification.
#[derive(Debug)]
struct RsaSha1;

/// sha1WithRSAEncryption (1.2.840.113549.1.1.5) with NULL parameters, without the outer
/// SEQUENCE.
const SHA1_WITH_RSA: &[u8] = &[
    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x05, 0x05, 0x00,
];

impl rustls::pki_types::SignatureVerificationAlgorithm for RsaSha1 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            public_key,
        )
        .verify(message, signature)
        .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        AlgorithmIdentifier::from_slice(SHA1_WITH_RSA)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: &str) -> SnsMessage {
        SnsMessage {
            kind: kind.into(),
            message_id: "id-1".into(),
            topic_arn: "arn:aws:sns:us-east-1:1:t".into(),
            subject: None,
            message: "hello".into(),
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            signature_version: "1".into(),
            signature: String::new(),
            signing_cert_url: String::new(),
            subscribe_url: Some("https://sns.us-east-1.amazonaws.com/?Action=Confirm".into()),
            token: Some("tok".into()),
        }
    }

    #[test]
    fn canonical_strings_by_type() {
        assert_eq!(
            canonical_string(&msg("Notification")).expect("ok"),
            "Message\nhello\nMessageId\nid-1\nTimestamp\n2026-01-01T00:00:00.000Z\nTopicArn\narn:aws:sns:us-east-1:1:t\nType\nNotification\n"
        );
        let mut with_subject = msg("Notification");
        with_subject.subject = Some("S".into());
        assert!(
            canonical_string(&with_subject)
                .expect("ok")
                .contains("MessageId\nid-1\nSubject\nS\nTimestamp\n")
        );
        assert_eq!(
            canonical_string(&msg("SubscriptionConfirmation")).expect("ok"),
            "Message\nhello\nMessageId\nid-1\nSubscribeURL\nhttps://sns.us-east-1.amazonaws.com/?Action=Confirm\nTimestamp\n2026-01-01T00:00:00.000Z\nToken\ntok\nTopicArn\narn:aws:sns:us-east-1:1:t\nType\nSubscriptionConfirmation\n"
        );
        assert!(matches!(
            canonical_string(&msg("Other")),
            Err(SnsError::UnsupportedType(_))
        ));
    }

    #[test]
    fn default_hosts() {
        let v = SnsVerifier::new(SesFeedbackConfig::default()).expect("verifier");
        for ok in [
            "sns.us-east-1.amazonaws.com",
            "sns.cn-north-1.amazonaws.com.cn",
        ] {
            assert!(v.host_allowed(ok), "{ok}");
        }
        for bad in [
            "sns.us-east-1.amazonaws.com.evil.example",
            "evil.sns.us-east-1.amazonaws.com",
            "sns..amazonaws.com",
            "sns.us_east.amazonaws.com",
            "example.com",
        ] {
            assert!(!v.host_allowed(bad), "{bad}");
        }
        assert!(matches!(
            v.check_url("http://sns.us-east-1.amazonaws.com/c.pem", "SigningCertURL"),
            Err(SnsError::UrlNotAllowed(_))
        ));
        assert!(matches!(
            v.check_url(
                "https://x@sns.us-east-1.amazonaws.com/c.pem",
                "SigningCertURL"
            ),
            Err(SnsError::UrlNotAllowed(_))
        ));
    }
}
