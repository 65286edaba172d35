//! TOTP (RFC 6238: SHA-1, 6 digits, 30 s steps, what authenticator apps expect), on the
//! server's [`Clock`](crate::clock::Clock). A code is accepted for the step before and after
//! the current one (clock drift), and the step it matched is returned so that each step is
//! used once.

use secrecy::{ExposeSecret, SecretString};
use totp_rs::{Algorithm, Secret, TOTP};

const STEP_SECS: u64 = 30;
const DIGITS: usize = 6;
/// 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;

/// A TOTP generator for one secret (base32, as stored and shown at enrolment).
pub struct Totp {
    totp: TOTP,
    base32: SecretString,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Totp([redacted])")
    }
}

impl Totp {
    /// A fresh random secret.
    pub fn generate() -> Self {
        let mut raw = [0u8; SECRET_BYTES];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
        let base32 = Secret::Raw(raw.to_vec()).to_encoded().to_string();
        Self::new(raw.to_vec(), base32)
    }

    /// From a stored base32 secret; `None` when it does not decode.
    pub fn from_base32(b32: &str) -> Option<Self> {
        let raw = Secret::Encoded(b32.to_owned()).to_bytes().ok()?;
        Some(Self::new(raw, b32.to_owned()))
    }

    fn new(raw: Vec<u8>, base32: String) -> Self {
        Self {
            totp: TOTP::new_unchecked(Algorithm::SHA1, DIGITS, 1, STEP_SECS, raw),
            base32: SecretString::from(base32),
        }
    }

    pub fn base32(&self) -> &str {
        self.base32.expose_secret()
    }

    /// The `otpauth://` URI authenticator apps read (usually from a QR code).
    pub fn uri(&self, issuer: &str, account: &str) -> String {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        };
        format!(
            "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECS}",
            enc(issuer),
            enc(account),
            self.base32(),
            enc(issuer)
        )
    }

    /// The step (time / 30 s) whose code `code` is, within one step of `now_ms`.
    pub fn matching_step(&self, code: &str, now_ms: i64) -> Option<i64> {
        use subtle::ConstantTimeEq;
        let code = code.trim();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now_step = (now_ms.max(0) as u64 / 1000) / STEP_SECS;
        let mut found = None;
        for step in [now_step.saturating_sub(1), now_step, now_step + 1] {
            let expected = self.totp.generate(step * STEP_SECS);
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
                found = Some(step as i64);
            }
        }
        found
    }

    /// The code for a time (tests and tools).
    pub fn code_at(&self, unix_secs: u64) -> String {
        self.totp.generate(unix_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 secret "12345678901234567890", last six digits.
    fn rfc() -> Totp {
        let b32 = Secret::Raw(b"12345678901234567890".to_vec())
            .to_encoded()
            .to_string();
        Totp::from_base32(&b32).expect("decodes")
    }

    #[test]
    fn rfc_6238_vectors() {
        let t = rfc();
        for (secs, code) in [
            (59, "287082"),
            (1_111_111_109, "081804"),
            (2_000_000_000, "279037"),
        ] {
            assert_eq!(t.code_at(secs), code, "{secs}");
        }
    }

    #[test]
    fn a_code_matches_its_step_and_the_neighbours_only() {
        let t = rfc();
        let now_ms = 1_111_111_109_000;
        let step = 1_111_111_109 / 30;
        assert_eq!(t.matching_step("081804", now_ms), Some(step));
        assert_eq!(
            t.matching_step(&t.code_at(1_111_111_109 + 30), now_ms),
            Some(step + 1)
        );
        assert_eq!(
            t.matching_step(&t.code_at(1_111_111_109 - 30), now_ms),
            Some(step - 1)
        );
        assert_eq!(
            t.matching_step(&t.code_at(1_111_111_109 + 90), now_ms),
            None
        );
        for bad in ["", "08180", "0818045", "08180a", " 081804 x"] {
            assert_eq!(t.matching_step(bad, now_ms), None, "{bad:?}");
        }
    }

    #[test]
    fn uri_names_issuer_account_and_secret() {
        let t = Totp::generate();
        let uri = t.uri("Postern", "ops lead@example.com");
        assert!(
            uri.starts_with("otpauth://totp/Postern:ops%20lead%40example.com?secret="),
            "{uri}"
        );
        assert!(uri.contains(&format!("secret={}&", t.base32())));
        assert!(!format!("{t:?}").contains(t.base32()));
    }
}
