//! Logins, enrolment, sessions and admin tokens: who an admin request is from.
//!
//! Passwords are checked with argon2id here and only here (a login, an enrolment); a request
//! afterwards carries a session cookie or an admin token, both looked up by a SHA-256 hash.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use secrecy::{ExposeSecret, SecretString};

use super::{AdminConfig, Role, Totp, code_hash, verify_password};
use crate::clock::SharedClock;
use crate::domain::{ApiKeySecret, KeyMode};
use crate::secrets::Keyring;
use crate::store::{AdminRecord, Store, StoreError};

/// The issuer shown in authenticator apps.
const ISSUER: &str = "Postern";
/// Last-use times of admin tokens are written at most this often.
const TOKEN_TOUCH_MS: i64 = 60_000;

/// Who an admin request is from, and what they may do.
#[derive(Debug, Clone)]
pub struct AdminPrincipal {
    /// `admin:<name>` or `token:<id>`: how audit records and held-message events name them.
    pub actor: String,
    pub role: Role,
    /// A tenant-admin's tenant: (id, name).
    pub tenant: Option<(String, String)>,
}

/// Why a login or enrolment was refused. The messages are safe to show.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("wrong user name, password or code")]
    Invalid,
    #[error("a TOTP code (totp) or a recovery code (recovery_code) is required")]
    TotpRequired,
    #[error("too many failed logins: this account is locked until {0}")]
    Locked(String),
    #[error("too many failed logins from this address; try again after {0}")]
    AddressLimited(String),
    #[error("this account is disabled")]
    Disabled,
    #[error("this account has enrolled already; log in with a TOTP code")]
    Enrolled,
    #[error("{0}")]
    Rejected(String),
    /// The account's sealed TOTP secret could not be opened (no or wrong KEK).
    #[error("the TOTP secret cannot be read: {0}")]
    Sealed(String),
    #[error("store unavailable")]
    Store(#[from] StoreError),
}

/// Why a request's session or token was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("log in first (POST /admin/v1/login) or send Authorization: Bearer <admin token>")]
    Missing,
    #[error("unknown or ended session; log in again")]
    Session,
    #[error("the session expired; log in again")]
    Expired,
    #[error("unknown, revoked or expired admin token")]
    Token,
    #[error("this account is disabled")]
    Disabled,
    #[error("store unavailable")]
    Store(#[from] StoreError),
}

/// A first login's answer: what to put in an authenticator app, and the recovery codes.
#[derive(Debug)]
pub struct Enrolment {
    pub secret: SecretString,
    pub uri: SecretString,
    pub recovery_codes: Vec<String>,
}

/// A new session: the cookie value (shown once) and when it ends.
#[derive(Debug)]
pub struct NewSession {
    pub token: SecretString,
    pub expires_at: i64,
    pub principal: AdminPrincipal,
}

pub enum LoginOutcome {
    Session(NewSession),
    Enrol(Enrolment),
}

/// A login's second factor.
pub enum Factor<'a> {
    None,
    Totp(&'a str),
    Recovery(&'a str),
}

/// What the `totp_secret` column holds when the secret is sealed in the secrets table.
const SEALED_PREFIX: &str = "secret:";

/// The KEK for admin TOTP secrets, when `[secrets]` names one; without one they are stored as
/// they are.
pub fn keyring(cfg: &crate::secrets::SecretsConfig) -> anyhow::Result<Option<Keyring>> {
    if cfg.kek_file.is_none() && cfg.kek_env.is_none() && cfg.kek_command.is_none() {
        return Ok(None);
    }
    Ok(Some(Keyring::from_config(cfg)?))
}

/// The secrets-table name of an admin's TOTP secret.
fn totp_secret_name(user: &str) -> String {
    format!("admin-totp.{}", &code_hash(user)[..32])
}

#[derive(Clone)]
pub struct Logins {
    store: Store,
    clock: SharedClock,
    cfg: AdminConfig,
    /// Seals TOTP secrets (envelope encryption, as provider secrets), when configured.
    keys: Option<Arc<Keyring>>,
    /// Failed logins per source address within the lockout window.
    failures: Arc<Mutex<HashMap<IpAddr, VecDeque<i64>>>>,
}

fn principal(a: &AdminRecord) -> AdminPrincipal {
    AdminPrincipal {
        actor: format!("admin:{}", a.username),
        role: Role::parse(&a.role).unwrap_or(Role::Auditor),
        tenant: a.tenant_id.clone().zip(a.tenant.clone()),
    }
}

impl Logins {
    pub fn new(store: Store, clock: SharedClock, cfg: AdminConfig, keys: Option<Keyring>) -> Self {
        Self {
            store,
            clock,
            cfg,
            keys: keys.map(Arc::new),
            failures: Arc::default(),
        }
    }

    /// What to store for a new TOTP secret: a reference to it sealed in the secrets table
    /// when a KEK is configured, else the secret itself.
    async fn seal_totp(&self, user: &str, b32: &str, now: i64) -> Result<String, LoginError> {
        let Some(keys) = &self.keys else {
            return Ok(b32.to_owned());
        };
        let name = totp_secret_name(user);
        crate::secrets::set(&self.store, keys, &name, b32.as_bytes(), now)
            .await
            .map_err(|e| LoginError::Sealed(format!("{e:#}")))?;
        Ok(format!("{SEALED_PREFIX}{name}"))
    }

    async fn open_totp(&self, stored: &str) -> Result<Option<Totp>, LoginError> {
        let Some(name) = stored.strip_prefix(SEALED_PREFIX) else {
            return Ok(Totp::from_base32(stored));
        };
        let keys = self.keys.as_ref().ok_or_else(|| {
            LoginError::Sealed("it is sealed, and no KEK is configured ([secrets])".into())
        })?;
        let s = crate::secrets::get(&self.store, keys, name)
            .await
            .map_err(|e| LoginError::Sealed(format!("{e:#}")))?;
        Ok(Totp::from_base32(s.expose_secret()))
    }

    pub fn config(&self) -> &AdminConfig {
        &self.cfg
    }

    fn window_ms(&self) -> i64 {
        self.cfg.lockout.as_millis() as i64
    }

    /// Refuses an address that failed too often within the window.
    fn check_address(&self, ip: Option<IpAddr>, now: i64) -> Result<(), LoginError> {
        let Some(ip) = ip else { return Ok(()) };
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(q) = map.get_mut(&ip) else {
            return Ok(());
        };
        while q.front().is_some_and(|t| *t <= now - self.window_ms()) {
            q.pop_front();
        }
        if q.len() >= self.cfg.ip_max_failures as usize {
            let until = q.front().copied().unwrap_or(now) + self.window_ms();
            return Err(LoginError::AddressLimited(crate::clock::rfc3339(until)));
        }
        Ok(())
    }

    /// Counts a failure against the address and (when it exists) the account.
    async fn failed(
        &self,
        account: Option<&str>,
        ip: Option<IpAddr>,
        now: i64,
        err: LoginError,
    ) -> LoginError {
        if let Some(ip) = ip {
            let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(ip).or_default().push_back(now);
        }
        if let Some(user) = account {
            let until = now + self.window_ms();
            match self
                .store
                .admin_login_failed(user, self.cfg.max_failures.max(1) as i64, until)
                .await
            {
                Ok(Some(t)) => {
                    tracing::warn!(admin = %user, ip = ?ip, "admin account locked after failed logins");
                    return LoginError::Locked(crate::clock::rfc3339(t));
                }
                Ok(None) => {}
                Err(e) => return LoginError::Store(e),
            }
        }
        err
    }

    /// The account, if it may try to log in at all (exists, not locked); the password is
    /// checked here too, so a wrong one costs the same time whether or not the name exists.
    async fn password_ok(
        &self,
        user: &str,
        password: &str,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<AdminRecord, LoginError> {
        self.check_address(ip, now)?;
        let account = match self.store.admin(user).await {
            Ok(a) => a,
            Err(StoreError::NotFound) => {
                // Same cost as a real check, so a name's existence does not show in timing.
                let _ = super::hash_password(password);
                return Err(self.failed(None, ip, now, LoginError::Invalid).await);
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(t) = account.locked_until.filter(|t| *t > now) {
            return Err(LoginError::Locked(crate::clock::rfc3339(t)));
        }
        if !verify_password(&account.password_hash, password) {
            return Err(self
                .failed(Some(&account.username), ip, now, LoginError::Invalid)
                .await);
        }
        if account.disabled_at.is_some() {
            return Err(LoginError::Disabled);
        }
        Ok(account)
    }

    /// A login: password plus TOTP or recovery code; for an account still on its one-time
    /// password, an enrolment instead of a session.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        factor: Factor<'_>,
        ip: Option<IpAddr>,
    ) -> Result<LoginOutcome, LoginError> {
        let now = self.clock.now_ms();
        // Without a second factor the answer is the same whether the password was right, so
        // it cannot be used to test passwords (failures still count).
        let account = match self.password_ok(user, password, ip, now).await {
            Err(LoginError::Invalid) if matches!(factor, Factor::None) => {
                return Err(LoginError::TotpRequired);
            }
            r => r?,
        };
        if account.pending {
            let totp = Totp::generate();
            let codes = super::new_recovery_codes();
            let hashes: Vec<String> = codes.iter().map(|c| code_hash(c)).collect();
            let stored = self
                .seal_totp(&account.username, totp.base32(), now)
                .await?;
            self.store
                .begin_enrolment(&account.username, &stored, &hashes)
                .await?;
            return Ok(LoginOutcome::Enrol(Enrolment {
                secret: SecretString::from(totp.base32().to_owned()),
                uri: SecretString::from(totp.uri(ISSUER, &account.username)),
                recovery_codes: codes,
            }));
        }
        let passed = match factor {
            Factor::None => return Err(LoginError::TotpRequired),
            Factor::Totp(code) => self.totp_ok(&account, code, now).await?,
            Factor::Recovery(code) => {
                self.store
                    .use_recovery_code(&account.username, &code_hash(code), now)
                    .await?
            }
        };
        if !passed {
            return Err(self
                .failed(Some(&account.username), ip, now, LoginError::Invalid)
                .await);
        }
        Ok(LoginOutcome::Session(
            self.open_session(&account, ip, now).await?,
        ))
    }

    /// Whether `code` is the account's TOTP code for a step not used before (claims it).
    async fn totp_ok(&self, a: &AdminRecord, code: &str, now: i64) -> Result<bool, LoginError> {
        let Some(stored) = &a.totp_secret else {
            return Ok(false);
        };
        let Some(totp) = self.open_totp(stored.expose_secret()).await? else {
            return Ok(false);
        };
        match totp.matching_step(code, now) {
            Some(step) => Ok(self.store.claim_totp_step(&a.username, step).await?),
            None => Ok(false),
        }
    }

    /// Ends enrolment: the one-time password, a TOTP code from the enrolled secret, and the
    /// password the admin chose. Answers with a session.
    pub async fn enrol(
        &self,
        user: &str,
        password: &str,
        totp: &str,
        new_password: &str,
        ip: Option<IpAddr>,
    ) -> Result<NewSession, LoginError> {
        let now = self.clock.now_ms();
        let account = self.password_ok(user, password, ip, now).await?;
        if !account.pending {
            return Err(LoginError::Enrolled);
        }
        if account.totp_secret.is_none() {
            return Err(LoginError::Rejected(
                "log in with the one-time password first to get the TOTP secret".into(),
            ));
        }
        super::check_new_password(new_password).map_err(|e| LoginError::Rejected(e.to_string()))?;
        if new_password == password {
            return Err(LoginError::Rejected(
                "choose a new password, not the one-time one".into(),
            ));
        }
        if !self.totp_ok(&account, totp, now).await? {
            return Err(self
                .failed(Some(&account.username), ip, now, LoginError::Invalid)
                .await);
        }
        let hash =
            super::hash_password(new_password).map_err(|e| LoginError::Rejected(e.to_string()))?;
        self.store.activate_admin(&account.username, &hash).await?;
        self.open_session(&account, ip, now).await
    }

    async fn open_session(
        &self,
        a: &AdminRecord,
        ip: Option<IpAddr>,
        now: i64,
    ) -> Result<NewSession, LoginError> {
        let token = super::random_chars(
            b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            43,
        );
        let expires_at = now + self.cfg.session_ttl.as_millis() as i64;
        let ip_text = ip.map(|i| i.to_string());
        self.store
            .insert_session(
                &code_hash(&token),
                &a.username,
                now,
                expires_at,
                ip_text.as_deref(),
            )
            .await?;
        self.store.admin_login_succeeded(&a.username, now).await?;
        Ok(NewSession {
            token: SecretString::from(token),
            expires_at,
            principal: principal(a),
        })
    }

    /// The admin behind a session cookie value; ends it when it expired or sat idle.
    pub async fn session(&self, cookie: &str) -> Result<AdminPrincipal, AccessError> {
        let now = self.clock.now_ms();
        let id = code_hash(cookie);
        let s = match self.store.session(&id).await {
            Err(StoreError::NotFound) => return Err(AccessError::Session),
            r => r?,
        };
        let idle_ms = self.cfg.session_idle.as_millis() as i64;
        if s.expires_at <= now || s.last_seen_at + idle_ms <= now {
            self.store.end_session(&id, now).await?;
            return Err(AccessError::Expired);
        }
        let a = match self.store.admin(&s.username).await {
            Err(StoreError::NotFound) => return Err(AccessError::Session),
            r => r?,
        };
        if a.disabled_at.is_some() {
            return Err(AccessError::Disabled);
        }
        // Put back on a one-time password (`init --force`): its old sessions are over.
        if a.pending {
            self.store.end_session(&id, now).await?;
            return Err(AccessError::Session);
        }
        self.store.touch_session(&id, now).await?;
        Ok(principal(&a))
    }

    pub async fn logout(&self, cookie: &str) -> Result<(), StoreError> {
        self.store
            .end_session(&code_hash(cookie), self.clock.now_ms())
            .await
    }

    /// The admin behind a `pst_admin_…` token.
    pub async fn token(&self, presented: &str) -> Result<AdminPrincipal, AccessError> {
        let secret = ApiKeySecret::parse(presented).map_err(|_| AccessError::Token)?;
        if secret.mode() != KeyMode::Admin {
            return Err(AccessError::Token);
        }
        let t = match self.store.admin_token(secret.id().as_str()).await {
            Err(StoreError::NotFound) => return Err(AccessError::Token),
            r => r?,
        };
        let now = self.clock.now_ms();
        if !secret.matches(&t.secret_hash)
            || t.revoked_at.is_some()
            || t.expires_at.is_some_and(|e| e <= now)
        {
            return Err(AccessError::Token);
        }
        if t.last_used_at.is_none_or(|at| at + TOKEN_TOUCH_MS <= now) {
            self.store.touch_admin_token(&t.id, now).await?;
        }
        Ok(AdminPrincipal {
            actor: format!("token:{}", t.id),
            role: Role::parse(&t.role).unwrap_or(Role::Auditor),
            tenant: t.tenant_id.zip(t.tenant),
        })
    }
}
