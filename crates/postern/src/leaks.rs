//! Leaked API keys: a report (GitHub secret-scanning partner style over HTTP, or
//! `postern keys report-leak`) revokes the key at once, holds its mail still waiting to go,
//! raises a guard alert and records the act in the audit log.
//!
//! GitHub signs each report with ECDSA P-256 over SHA-256 of the raw body and names the key in
//! `Github-Public-Key-Identifier`; the signature (base64, DER) is in
//! `Github-Public-Key-Signature`. The public keys are configured, not fetched, so a report
//! can only come from whoever holds a configured key.

use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::{Deserialize, Serialize};

use crate::audit::AuditEvent;
use crate::domain::ApiKeySecret;
use crate::guard::{Pause, PauseScope};
use crate::store::{Alert, Store, StoreError};

pub const KEY_ID_HEADER: &str = "github-public-key-identifier";
pub const SIGNATURE_HEADER: &str = "github-public-key-signature";
/// The most tokens one report may carry.
pub const MAX_TOKENS: usize = 1000;

/// `[leaks]` in postern.toml.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaksConfig {
    /// Keys a report may be signed with: GitHub's from
    /// `https://api.github.com/meta/public_keys/secret_scanning`.
    #[serde(default)]
    pub public_keys: Vec<PublicKeyConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKeyConfig {
    /// The `key_identifier` GitHub sends in `Github-Public-Key-Identifier`.
    pub id: String,
    /// The public key, PEM (`-----BEGIN PUBLIC KEY-----`).
    pub pem: String,
}

/// The configured keys, parsed once at start.
#[derive(Debug, Clone, Default)]
pub struct LeakVerifier {
    keys: Vec<(String, VerifyingKey)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    #[error("leak reports are not accepted here: no [leaks] public_keys are configured")]
    NotConfigured,
    #[error("missing Github-Public-Key-Identifier or Github-Public-Key-Signature header")]
    Missing,
    #[error("unknown public key identifier")]
    UnknownKey,
    #[error("the signature does not verify")]
    Bad,
}

impl LeakVerifier {
    pub fn from_config(cfg: &LeaksConfig) -> anyhow::Result<Self> {
        let keys = cfg
            .public_keys
            .iter()
            .map(|k| {
                VerifyingKey::from_public_key_pem(k.pem.trim())
                    .map(|v| (k.id.clone(), v))
                    .map_err(|e| {
                        anyhow::anyhow!(
                            "[leaks] public_keys: key {:?} is not a P-256 public key in PEM: {e}",
                            k.id
                        )
                    })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { keys })
    }

    /// Checks `signature_b64` (DER, base64) over `body` with the key named `key_id`.
    pub fn verify(
        &self,
        key_id: Option<&str>,
        signature_b64: Option<&str>,
        body: &[u8],
    ) -> Result<(), SignatureError> {
        if self.keys.is_empty() {
            return Err(SignatureError::NotConfigured);
        }
        let (Some(id), Some(sig)) = (key_id, signature_b64) else {
            return Err(SignatureError::Missing);
        };
        let key = self
            .keys
            .iter()
            .find(|(k, _)| k == id.trim())
            .map(|(_, v)| v)
            .ok_or(SignatureError::UnknownKey)?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(sig.trim())
            .map_err(|_| SignatureError::Bad)?;
        let sig = Signature::from_der(&der).map_err(|_| SignatureError::Bad)?;
        key.verify(body, &sig).map_err(|_| SignatureError::Bad)
    }
}

/// One token GitHub found. `Debug` leaves the token out.
#[derive(Clone, Deserialize)]
pub struct ReportedToken {
    pub token: String,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub source: Option<String>,
}

impl std::fmt::Debug for ReportedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportedToken")
            .field("type", &self.kind)
            .field("url", &self.url)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// GitHub's documented answer per token.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TokenVerdict {
    pub token_raw: String,
    pub token_type: String,
    /// `true_positive` (a key of this Postern; now revoked) or `false_positive`.
    pub label: &'static str,
}

/// Where a leaked key was found.
#[derive(Debug, Clone, Default)]
pub struct Finding<'a> {
    pub kind: Option<&'a str>,
    pub url: Option<&'a str>,
    pub source: Option<&'a str>,
}

/// What a report did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// A key of this Postern: revoked (now or before), its waiting mail held.
    Leaked { key_id: String, held: u64 },
    /// Malformed, wrong checksum, unknown id, or a secret that does not match the key.
    NotOurs,
}

/// Revokes the key `secret` names (if it is one of ours and the secret matches), pauses it so
/// anything claimed right now is held before its call, holds its queued and deferred mail,
/// records a guard alert and an audit entry.
pub async fn report(
    store: &Store,
    secret: &str,
    found: &Finding<'_>,
    actor: &str,
    source_ip: Option<&str>,
    now: i64,
) -> crate::store::Result<Outcome> {
    let Ok(secret) = ApiKeySecret::parse(secret.trim()) else {
        return Ok(Outcome::NotOurs);
    };
    let key = match store.key(secret.id().as_str()).await {
        Err(StoreError::NotFound) => return Ok(Outcome::NotOurs),
        r => r?,
    };
    if !secret.matches(&key.secret_hash) {
        return Ok(Outcome::NotOurs);
    }
    let id = key.id.clone();
    let where_found = found.url.unwrap_or("an unnamed place");
    let reason = format!("key leaked: found at {where_found}");
    store.revoke_key(&id, now).await?;
    let pause = Pause {
        scope: PauseScope::Key(id.clone()),
        reason: reason.clone(),
        actor: actor.to_owned(),
        created_at: now,
    };
    store.pause(&pause).await?;
    let held = store
        .hold_key_queue(&id, &pause.scope.tag(), &reason, now)
        .await?;
    let evidence = serde_json::json!({
        "type": found.kind, "url": found.url, "source": found.source,
        "reported_by": actor, "held": held, "revoked": true,
    });
    store
        .record_alert(&Alert {
            id: uuid::Uuid::now_v7().to_string(),
            at: now,
            scope: "key".into(),
            target: id.clone(),
            signal: "leaked_key".into(),
            evidence: evidence.clone(),
            action: "hold".into(),
        })
        .await?;
    let target = format!("key:{id}");
    crate::audit::record(
        store,
        now,
        AuditEvent {
            actor,
            source_ip,
            action: "key.leaked",
            target: &target,
            reason: Some(&reason),
            detail: evidence,
        },
    )
    .await?;
    tracing::error!(key = %id, url = where_found, held, "leaked API key revoked; its waiting mail is held");
    Ok(Outcome::Leaked { key_id: id, held })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    fn verifier(sk: &SigningKey) -> LeakVerifier {
        let pem = sk
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        LeakVerifier::from_config(&LeaksConfig {
            public_keys: vec![PublicKeyConfig {
                id: "k1".into(),
                pem,
            }],
        })
        .expect("verifier")
    }

    #[test]
    fn signatures_verify_only_with_the_named_key_over_the_exact_body() {
        let sk = SigningKey::from_bytes(&[7u8; 32].into()).expect("key");
        let v = verifier(&sk);
        let body = br#"[{"token":"x","type":"t","url":"u","source":"content"}]"#;
        let sig: Signature = sk.sign(body);
        let b64 = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
        assert_eq!(v.verify(Some("k1"), Some(&b64), body), Ok(()));
        assert_eq!(
            v.verify(Some("k1"), Some(&b64), b"[]"),
            Err(SignatureError::Bad)
        );
        assert_eq!(
            v.verify(Some("k2"), Some(&b64), body),
            Err(SignatureError::UnknownKey)
        );
        assert_eq!(
            v.verify(Some("k1"), Some("not base64!"), body),
            Err(SignatureError::Bad)
        );
        assert_eq!(
            v.verify(None, Some(&b64), body),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            LeakVerifier::default().verify(Some("k1"), Some(&b64), body),
            Err(SignatureError::NotConfigured)
        );
    }

    #[test]
    fn a_bad_pem_is_a_clear_config_error() {
        let e = LeakVerifier::from_config(&LeaksConfig {
            public_keys: vec![PublicKeyConfig {
                id: "gh".into(),
                pem: "nope".into(),
            }],
        })
        .expect_err("bad pem");
        assert!(e.to_string().contains("\"gh\""), "{e}");
    }
}
