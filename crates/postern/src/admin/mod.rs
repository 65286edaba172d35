//! Operators: admin accounts (argon2id password, mandatory TOTP, one-time recovery codes),
//! roles, sessions and admin API tokens; and the operations the CLI and the admin API share.
//!
//! An account starts on a one-time password. Its first login returns a TOTP enrolment (secret,
//! `otpauth://` URI) and recovery codes; it becomes active when a valid TOTP code and a new
//! password are given. From then on every login needs the password and a TOTP code (or a
//! recovery code, each good once). Failed logins lock the account for a while and, per source
//! address, are refused after a limit.

pub mod login;
pub mod ops;
mod totp;

use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

pub use login::{AdminPrincipal, Logins};
pub use ops::{OpError, OpResult};
pub use totp::Totp;

use crate::domain::{ApiKeySecret, KeyMode};
use crate::store::{AdminTokenRecord, Store, StoreError, Tenant};

/// What an admin may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Everything, including admin accounts and tokens.
    Owner,
    /// Everything but admin accounts and tokens.
    Operator,
    /// Reads everything, changes nothing.
    Auditor,
    /// Reads and acts on one tenant only.
    TenantAdmin,
}

impl Role {
    pub const NAMES: &'static [&'static str] = &["owner", "operator", "auditor", "tenant-admin"];

    pub fn parse(s: &str) -> OpResult<Self> {
        Ok(match s.trim() {
            "owner" => Self::Owner,
            "operator" => Self::Operator,
            "auditor" => Self::Auditor,
            "tenant-admin" => Self::TenantAdmin,
            other => {
                return Err(OpError::Invalid(format!(
                    "unknown role {other:?}; roles: {}",
                    Self::NAMES.join(", ")
                )));
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Operator => "operator",
            Self::Auditor => "auditor",
            Self::TenantAdmin => "tenant-admin",
        }
    }
}

/// A role and the tenant it needs: a tenant-admin names exactly one, the others none.
pub async fn role_and_tenant(
    store: &Store,
    role: &str,
    tenant: Option<&str>,
) -> OpResult<(Role, Option<Tenant>)> {
    let role = Role::parse(role)?;
    match (role, tenant) {
        (Role::TenantAdmin, None) => Err(OpError::Invalid(
            "a tenant-admin needs a tenant (--tenant T)".into(),
        )),
        (Role::TenantAdmin, Some(t)) => Ok((role, Some(ops::tenant(store, t).await?))),
        (_, Some(_)) => Err(OpError::Invalid(format!(
            "only a tenant-admin is tied to a tenant, not an {}",
            role.as_str()
        ))),
        (_, None) => Ok((role, None)),
    }
}

/// `[admin]` in postern.toml.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// How long a session lasts after login, whatever its use.
    #[serde(default = "default_session_ttl", deserialize_with = "duration")]
    pub session_ttl: Duration,
    /// A session unused for this long ends.
    #[serde(default = "default_session_idle", deserialize_with = "duration")]
    pub session_idle: Duration,
    /// Failed logins in a row that lock an account.
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// How long a locked account stays locked; also the window of the per-address limit.
    #[serde(default = "default_lockout", deserialize_with = "duration")]
    pub lockout: Duration,
    /// Failed logins from one address, within `lockout`, after which it is refused.
    #[serde(default = "default_ip_max_failures")]
    pub ip_max_failures: u32,
    /// Mark the session cookie `Secure` (set when admins reach Postern over HTTPS).
    #[serde(default)]
    pub secure_cookie: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            session_ttl: default_session_ttl(),
            session_idle: default_session_idle(),
            max_failures: default_max_failures(),
            lockout: default_lockout(),
            ip_max_failures: default_ip_max_failures(),
            secure_cookie: false,
        }
    }
}

fn default_session_ttl() -> Duration {
    Duration::from_secs(12 * 3600)
}
fn default_session_idle() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_max_failures() -> u32 {
    5
}
fn default_lockout() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_ip_max_failures() -> u32 {
    20
}

/// A duration as `12h`, `30m`, `45s`, `7d`, or a number of seconds.
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Secs(s) if s > 0 => Ok(Duration::from_secs(s)),
        Raw::Secs(_) => Err(serde::de::Error::custom("expected a positive duration")),
        Raw::Text(t) => crate::clock::parse_duration_ms(&t)
            .map(|ms| Duration::from_millis(ms as u64))
            .map_err(|e| serde::de::Error::custom(e.to_string())),
    }
}

// ---- secrets ----------------------------------------------------------------------------

const PASSWORD_CHARS: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// The shortest password an admin may choose.
pub const MIN_PASSWORD_LEN: usize = 12;

fn random_chars(alphabet: &[u8], n: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())] as char)
        .collect()
}

/// A one-time password, printed once.
pub fn one_time_password() -> String {
    random_chars(PASSWORD_CHARS, 20)
}

/// argon2id (the crate's defaults: 19 MiB, 2 passes), PHC string with its salt.
pub fn hash_password(password: &str) -> Result<String, OpError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| OpError::Invalid(format!("cannot hash the password: {e}")))
}

pub fn verify_password(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A password an admin chose: long enough.
pub fn check_new_password(password: &str) -> OpResult<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(OpError::Invalid(format!(
            "the new password must have at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

/// Ten recovery codes of 125 random bits each (`xxxxx-xxxxx-xxxxx-xxxxx-xxxxx`, base32). With
/// that much entropy a SHA-256 of each is as good as a slow hash, and a login can look a code
/// up by its hash.
pub fn new_recovery_codes() -> Vec<String> {
    const B32: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";
    (0..10)
        .map(|_| {
            (0..5)
                .map(|_| random_chars(B32, 5))
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// The stored form of a recovery code or a session id: SHA-256 of it, with separators and
/// case ignored for recovery codes.
pub fn code_hash(code: &str) -> String {
    let norm: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex::encode(Sha256::digest(norm.as_bytes()))
}

// ---- accounts and tokens ----------------------------------------------------------------

/// An admin name: 1–64 letters, digits, `.`, `_`, `-`, `@`.
pub fn check_username(name: &str) -> OpResult<&str> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(name)
    } else {
        Err(OpError::Invalid(format!(
            "{name:?} is not an admin name (1-64 letters, digits, '.', '_', '-', '@')"
        )))
    }
}

/// Adds an account on a one-time password, which is returned (shown once).
pub async fn add_admin(
    store: &Store,
    name: &str,
    role: &str,
    tenant: Option<&str>,
    now: i64,
) -> OpResult<String> {
    let name = check_username(name)?;
    let (role, tenant) = role_and_tenant(store, role, tenant).await?;
    let password = one_time_password();
    let hash = hash_password(&password)?;
    match store
        .insert_admin(
            name,
            &hash,
            role.as_str(),
            tenant.as_ref().map(|t| t.id.as_str()),
            now,
        )
        .await
    {
        Err(StoreError::Conflict(what)) => Err(OpError::Conflict(format!("{what} already exists"))),
        r => Ok(r.map(|()| password)?),
    }
}

pub async fn disable_admin(store: &Store, name: &str, now: i64) -> OpResult<()> {
    match store.disable_admin(check_username(name)?, now).await {
        Err(StoreError::NotFound) => Err(OpError::NotFound(format!("no admin {name:?}"))),
        r => Ok(r?),
    }
}

/// Creates an admin token (`pst_admin_<id>_<secret><checksum>`); the secret is returned once
/// and only its SHA-256 is stored.
pub async fn create_token(
    store: &Store,
    name: &str,
    role: &str,
    tenant: Option<&str>,
    expires: Option<&str>,
    created_by: &str,
    now: i64,
) -> OpResult<(AdminTokenRecord, ApiKeySecret)> {
    let name = name.trim();
    if name.is_empty() || name.len() > 100 {
        return Err(OpError::Invalid(
            "a token needs a name (1-100 characters)".into(),
        ));
    }
    let (role, tenant) = role_and_tenant(store, role, tenant).await?;
    let expires_at = match expires {
        None => None,
        Some(e) => Some(
            now + crate::clock::parse_duration_ms(e).map_err(|_| {
                OpError::Invalid(format!("expires {e:?}: expected a duration (90d, 12h)"))
            })?,
        ),
    };
    let secret = ApiKeySecret::generate(KeyMode::Admin);
    let rec = AdminTokenRecord {
        id: secret.id().to_string(),
        name: name.to_owned(),
        secret_hash: secret.hash(),
        role: role.as_str().to_owned(),
        tenant_id: tenant.as_ref().map(|t| t.id.clone()),
        tenant: tenant.map(|t| t.name),
        created_by: created_by.to_owned(),
        created_at: now,
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    store.insert_admin_token(&rec).await?;
    Ok((rec, secret))
}

pub async fn revoke_token(store: &Store, id: &str, now: i64) -> OpResult<()> {
    let id = crate::domain::ApiKeyId::parse(id)
        .map_err(|_| OpError::Invalid(format!("{id:?} is not a token id")))?;
    match store.revoke_admin_token(id.as_str(), now).await {
        Err(StoreError::NotFound) => Err(OpError::NotFound(format!("no admin token {id}"))),
        r => Ok(r?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print() {
        for name in Role::NAMES {
            assert_eq!(Role::parse(name).expect("known").as_str(), *name);
        }
        assert!(Role::parse("root").is_err());
    }

    #[test]
    fn recovery_codes_are_distinct_and_hash_ignoring_case_and_dashes() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), 10);
        let distinct: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), 10);
        let c = &codes[0];
        assert_eq!(c.len(), 29);
        assert_eq!(code_hash(c), code_hash(&c.to_uppercase().replace('-', " ")));
        assert_ne!(code_hash(c), code_hash(&codes[1]));
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("a long enough password").expect("hashes");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password(&h, "a long enough password"));
        assert!(!verify_password(&h, "another password"));
        assert!(!verify_password("not a hash", "x"));
        assert!(check_new_password("short").is_err());
    }

    #[test]
    fn config_durations_and_defaults() {
        let c: AdminConfig = toml::from_str("session_ttl = \"2h\"\nlockout = 90").expect("parses");
        assert_eq!(c.session_ttl, Duration::from_secs(7200));
        assert_eq!(c.lockout, Duration::from_secs(90));
        assert_eq!(c.session_idle, Duration::from_secs(1800));
        assert_eq!(c.max_failures, 5);
        let e = toml::from_str::<AdminConfig>("session_ttl = \"soon\"").expect_err("refused");
        assert!(e.to_string().contains("session_ttl"), "{e}");
        assert!(toml::from_str::<AdminConfig>("sesion_ttl = 1").is_err());
    }
}
