use std::fmt;

use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;

/// Whether `b` is in [`ALPHABET`]: the 62 ASCII letters and digits, so the standard library's
/// three range checks say it where a scan of the alphabet took up to 62 comparisons (every
/// byte of every presented key goes through this).
fn in_alphabet(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// Whether a key sends for real (`live`) or is a test key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyMode {
    Live,
    Test,
    /// An admin API token (`pst_admin_…`): same shape and checksum, never a sending key.
    Admin,
}

impl KeyMode {
    fn as_str(self) -> &'static str {
        match self {
            KeyMode::Live => "live",
            KeyMode::Test => "test",
            KeyMode::Admin => "admin",
        }
    }
}

/// The public half of an API key: safe to log, print and store.
#[derive(Clone, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        if raw.len() == ID_LEN && raw.bytes().all(in_alphabet) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(KeyError::Malformed)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A whole API key as a client presents it:
/// `pst_<live|test>_<id>_<secret><checksum>`.
///
/// The recognisable prefix and the CRC32 checksum let secret scanners find leaked keys with no
/// false positives, and let Postern reject a mistyped key without touching the store. The
/// secret part never leaves this type except through [`ApiKeySecret::hash`]; `Debug` shows only
/// the id.
pub struct ApiKeySecret {
    id: ApiKeyId,
    mode: KeyMode,
    token: SecretString,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("API key is malformed (expected pst_live_<id>_<secret>)")]
    Malformed,
    #[error("API key checksum does not match (mistyped or truncated key)")]
    Checksum,
}

fn base62(rng: &mut impl Rng, n: usize) -> String {
    (0..n)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

fn checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    let mut v = crc32fast::hash(body.as_bytes()) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(v % 62) as usize];
        v /= 62;
    }
    out
}

impl ApiKeySecret {
    pub fn generate(mode: KeyMode) -> Self {
        let mut rng = rand::rngs::OsRng;
        let id = base62(&mut rng, ID_LEN);
        let body = format!(
            "pst_{}_{}_{}",
            mode.as_str(),
            id,
            base62(&mut rng, SECRET_LEN)
        );
        let sum = checksum(&body);
        // The checksum is base62, so ASCII.
        let token = format!("{body}{}", String::from_utf8_lossy(&sum));
        Self {
            id: ApiKeyId(id),
            mode,
            token: SecretString::from(token),
        }
    }

    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        let rest = raw.strip_prefix("pst_").ok_or(KeyError::Malformed)?;
        let (mode, rest) = match rest.split_once('_') {
            Some(("live", r)) => (KeyMode::Live, r),
            Some(("test", r)) => (KeyMode::Test, r),
            Some(("admin", r)) => (KeyMode::Admin, r),
            _ => return Err(KeyError::Malformed),
        };
        let (id, tail) = rest.split_once('_').ok_or(KeyError::Malformed)?;
        let id = ApiKeyId::parse(id)?;
        if tail.len() != SECRET_LEN + CHECKSUM_LEN || !tail.bytes().all(in_alphabet) {
            return Err(KeyError::Malformed);
        }
        let (_, sum) = raw.split_at(raw.len() - CHECKSUM_LEN);
        if checksum(&raw[..raw.len() - CHECKSUM_LEN]) != sum.as_bytes() {
            return Err(KeyError::Checksum);
        }
        Ok(Self {
            id,
            mode,
            token: SecretString::from(raw.to_owned()),
        })
    }

    pub fn id(&self) -> &ApiKeyId {
        &self.id
    }

    pub fn mode(&self) -> KeyMode {
        self.mode
    }

    /// The stored form. The secret has 190 bits of entropy, so a single SHA-256 is enough to
    /// make the stored hash useless to a thief; a slow password hash would only cost every
    /// request time.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(self.token.expose_secret().as_bytes()))
    }

    /// Shown once, when the key is created.
    pub fn expose(&self) -> &str {
        self.token.expose_secret()
    }

    /// Timing-safe comparison with a stored hash.
    pub fn matches(&self, stored_hash: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.hash().as_bytes().ct_eq(stored_hash.as_bytes()).into()
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret(pst_{}_{}_…)", self.mode.as_str(), self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let k = ApiKeySecret::generate(KeyMode::Live);
        let p = ApiKeySecret::parse(k.expose()).unwrap();
        assert_eq!(p.id(), k.id());
        assert_eq!(p.hash(), k.hash());
        assert!(p.matches(&k.hash()));
        assert!(k.expose().starts_with("pst_live_"));
    }

    #[test]
    fn checksum_catches_a_changed_character() {
        let k = ApiKeySecret::generate(KeyMode::Test);
        let mut s = k.expose().to_owned();
        let i = s.len() - 10;
        let c = if &s[i..=i] == "a" { "b" } else { "a" };
        s.replace_range(i..=i, c);
        assert_eq!(ApiKeySecret::parse(&s).unwrap_err(), KeyError::Checksum);
    }

    #[test]
    fn malformed_keys() {
        for s in [
            "",
            "pst_",
            "pst_live_x_y",
            "sk_live_abc",
            "pst_prod_AAAAAAAAAAAA_x",
        ] {
            assert_eq!(
                ApiKeySecret::parse(s).unwrap_err(),
                KeyError::Malformed,
                "{s}"
            );
        }
    }

    #[test]
    fn in_alphabet_is_membership_of_the_alphabet() {
        for b in 0..=u8::MAX {
            assert_eq!(in_alphabet(b), ALPHABET.contains(&b), "byte {b}");
        }
    }

    #[test]
    fn a_character_outside_base62_is_malformed() {
        let k = ApiKeySecret::generate(KeyMode::Live);
        for (at, c) in [(9, "-"), (15, "_"), (30, "+"), (40, "=")] {
            let mut s = k.expose().to_owned();
            s.replace_range(at..=at, c);
            assert_eq!(
                ApiKeySecret::parse(&s).unwrap_err(),
                KeyError::Malformed,
                "{s}"
            );
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        let k = ApiKeySecret::generate(KeyMode::Live);
        let secret_part = &k.expose()[k.expose().len() - 38..];
        assert!(!format!("{k:?}").contains(secret_part));
    }
}
